//! What can be stored, passed and returned.

use rkyv::Archive;
use rkyv::api::high::HighDeserializer;
use rkyv::bytecheck::CheckBytes;

use ferry_store::{Storable, StoreValidator};

/// A value that can live in the object store: anything rkyv can archive and
/// check. Implemented for every such type; derive it with
/// `#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]`.
pub trait Object:
    Sized + Storable + Archive<Archived: for<'a> CheckBytes<StoreValidator<'a>> + Sync> + Sync + 'static
{
}

impl<T> Object for T where
    T: Storable + Archive<Archived: for<'a> CheckBytes<StoreValidator<'a>> + Sync> + Sync + 'static
{
}

/// An [`Object`] that can also be turned back into an owned value: what task
/// and actor-method arguments must be.
pub trait Remotable: Object + Sized + Archive<Archived: rkyv::Deserialize<Self, Deser>> {}

impl<T> Remotable for T where T: Object + Archive<Archived: rkyv::Deserialize<T, Deser>> {}

/// The deserializer Ferry uses.
pub(crate) type Deser = HighDeserializer<ferry_store::ArchiveError>;
