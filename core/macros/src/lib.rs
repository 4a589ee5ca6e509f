//! Ferry's attribute macros. Use them through the `ferry` crate:
//! `#[ferry::remote]`, `#[ferry::actor]`, `#[ferry::main]`.

mod actor;
mod actor_streaming;
mod main_fn;
mod params;
mod remote;
mod streaming;

use proc_macro::TokenStream;

/// Makes a function a remote task: `f::remote(&rt, args…)` submits it and
/// returns an `ObjectRef` of its result; `f::options().num_cpus(0.5)…
/// .remote(&rt, args…)` sets options. Each argument takes a value or an
/// `ObjectRef` of it; a `View<T>` parameter receives a zero-copy view; a
/// `&Runtime` parameter receives the runtime. A `Result` return value makes
/// `Err` a task error.
///
/// A `Vec<View<T>>` parameter is a list of top-level arguments (Ray's
/// `f.remote(*refs)`, which a fixed Rust signature cannot spell): the caller
/// passes any iterable of things a `T` parameter takes (`Vec<ObjectRef<T>>`,
/// `&[ObjectRef<T>]`, `[&ObjectRef<T>; N]`, `Vec<Arg<T>>` mixing values and
/// refs); the task waits for every ref in it, on whatever rank it runs, and
/// receives one view per element, in order. Other containers of refs
/// (`Vec<ObjectRef<T>>` as the parameter type) are values, their refs passed
/// as refs. Actor methods take list parameters the same way. (The `ferry`
/// crate's front page runs this example.)
///
/// ```text
/// use ferry::View;
///
/// #[ferry::remote]
/// fn total(xs: Vec<View<Vec<u64>>>) -> u64 {
///     xs.iter().flat_map(|x| x.as_slice()).sum()
/// }
///
/// let rt = ferry::init(ferry::Config::default().num_cpus(1.0))?;
/// let refs = vec![rt.put(&vec![1u64, 2])?, rt.put(&vec![3u64])?];
/// assert_eq!(*rt.get(&total::remote(&rt, &refs[..])?)?, 6);
/// # rt.shutdown()?;
/// # Ok::<(), ferry::Error>(())
/// ```
///
/// `#[ferry::remote(num_returns = N)]` (Ray's `num_returns`), on a function
/// returning a tuple of N elements (N ≥ 2) or a `Result` of one, makes
/// `remote` give a tuple of N refs, one per element, each its own object
/// (its own id, consumers and lifetime); a failure of the task fails every
/// one with the task's error. The task stores its whole tuple, and a small
/// task per element copies the element out on the submitting rank (so
/// elements must be types a parameter could take). `encode` and a run by
/// id still give one ref, to the whole tuple. `num_returns` below 2, or a
/// return type that is not a tuple of that many elements, is a compile
/// error. (`examples/multiple_returns.rs` runs this.)
///
/// ```text
/// #[ferry::remote(num_returns = 2)]
/// fn split(x: u64) -> (u64, String) {
///     (x * 2, x.to_string())
/// }
///
/// let (a, b) = split::remote(&rt, 21)?; // (ObjectRef<u64>, ObjectRef<String>)
/// ```
///
/// `#[ferry::remote(num_returns = "streaming")]` (Ray's generators), on a
/// function returning `impl Iterator<Item = T>` (items
/// `Result<T, E>` end the stream at their first `Err`), a concrete
/// iterator type or anything `IntoIterator`, or a `Result` of one, makes
/// `remote` give an `ObjectRefGenerator<T>`: one ref per item, as the task
/// produces it (see `ferry::ObjectRefGenerator`; the `ferry` crate's front
/// page runs an example, `examples/streaming_returns.rs` another).
/// `encode` is not generated for a streaming function.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a struct an actor class (on the struct) and its methods remote
/// (on its `impl` block, which must have `fn new(…) -> Self`).
/// A method returning `impl Iterator<Item = T>` (or a `Result` of one)
/// streams its items: its proxy gives an `ActorStreamCall` whose
/// `remote()` is an `ObjectRefGenerator<T>`.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    actor::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes `fn main(rt: ferry::Runtime) -> ferry::Result<()>` a program: the
/// runtime starts from the environment (`FERRY_NUM_CPUS`, …), the body runs,
/// the runtime shuts down, and an error is printed and sets exit status 1.
/// The body may also return `()`, a `std::process::ExitCode` or a
/// `Result<ExitCode, E>` (the status to end with after the shutdown, e.g. 2
/// for bad flags).
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
