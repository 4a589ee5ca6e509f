//! What can go wrong with a placement group, inside
//! [`Error::PlacementGroup`](crate::Error::PlacementGroup).

/// Why a placement group could not be created, used or waited for.
///
/// ```
/// use ferry_core::{Error, PlacementGroupError};
/// let e = Error::from(PlacementGroupError::NoBundles);
/// assert!(matches!(e, Error::PlacementGroup(PlacementGroupError::NoBundles)));
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementGroupError {
    /// A group was asked for with no bundles.
    #[error("a placement group needs at least one bundle")]
    NoBundles,
    /// A bundle was empty, or asked for an amount that is not a finite
    /// number above zero.
    #[error("bundle {bundle}: {reason}")]
    BadBundle {
        /// The bundle's index.
        bundle: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No placement of the bundles with the strategy fits the cluster's
    /// ranks, even with nothing else reserved.
    #[error("placement group infeasible: {reason}")]
    Infeasible {
        /// Why (which strategy, which resource).
        reason: String,
    },
    /// The group was removed (or failed: `reason` says), so it holds no
    /// resources and nothing more runs in it.
    #[error("placement group {group} was removed: {reason}")]
    Removed {
        /// The group's id.
        group: u64,
        /// Removed by whom, or why it failed.
        reason: String,
    },
    /// The registry does not know the group (never created in this job).
    #[error("placement group {group} is unknown")]
    NotFound {
        /// The group's id.
        group: u64,
    },
    /// A task or actor asked for a bundle index the group does not have.
    #[error("placement group {group} has {bundles} bundle(s); there is no bundle {index}")]
    BundleIndex {
        /// The group's id.
        group: u64,
        /// The index asked for.
        index: u32,
        /// How many bundles the group has.
        bundles: usize,
    },
    /// A task or actor asks for more than its bundle holds.
    #[error(
        "{what} asks for {asked} {resource}, but bundle {index} of placement group {group} \
         holds {has}"
    )]
    DoesNotFit {
        /// The task or actor.
        what: String,
        /// The group's id.
        group: u64,
        /// The bundle's index.
        index: u32,
        /// The resource.
        resource: String,
        /// How much it asks for.
        asked: f64,
        /// How much the bundle holds.
        has: f64,
    },
    /// The group was not placed within the time allowed.
    #[error("placement group {group} was not placed within {waited:?}")]
    NotPlaced {
        /// The group's id.
        group: u64,
        /// How long was waited.
        waited: std::time::Duration,
    },
    /// The group's registry on rank 0 could not be asked or did not answer.
    #[error("the placement group registry on rank 0 did not answer: {reason}")]
    Registry {
        /// What went wrong.
        reason: String,
    },
}
