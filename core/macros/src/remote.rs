//! `#[ferry::remote]` on a function.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use crate::params::{self, err};

/// What `num_returns` asks for.
enum Returns {
    /// `num_returns = N` (N ≥ 2).
    Many(usize),
    /// `num_returns = "streaming"`.
    Streaming,
}

/// `num_returns = N` (Ray's `@ray.remote(num_returns=N)`), `num_returns =
/// "streaming"`, or nothing.
fn num_returns(attr: TokenStream) -> syn::Result<Option<Returns>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let span = attr.span();
    let usage = "#[ferry::remote] takes no arguments but `num_returns = N` or \
                 `num_returns = \"streaming\"` (set other options with f::options())";
    let nv: syn::MetaNameValue = syn::parse2(attr).map_err(|_| err(span, usage))?;
    if !nv.path.is_ident("num_returns") {
        return Err(err(nv.path.span(), usage));
    }
    let n = match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(n),
            ..
        }) => n.base10_parse::<usize>()?,
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) if s.value() == "streaming" => return Ok(Some(Returns::Streaming)),
        other => {
            return Err(err(
                other.span(),
                "num_returns takes an integer literal or \"streaming\"",
            ));
        }
    };
    if n < 2 {
        return Err(err(
            nv.value.span(),
            "num_returns must be 2 or more (a function with one return value needs no num_returns)",
        ));
    }
    Ok(Some(Returns::Many(n)))
}

/// The element types of the tuple a `num_returns = n` function returns.
fn elements(out_ty: &Type, n: usize, ret_span: proc_macro2::Span) -> syn::Result<Vec<Type>> {
    match out_ty {
        Type::Tuple(t) if t.elems.len() == n => Ok(t.elems.iter().cloned().collect()),
        _ => Err(err(
            ret_span,
            &format!(
                "num_returns = {n} needs a function returning a tuple of {n} elements \
                 (or a Result of one)"
            ),
        )),
    }
}

/// A remote function is neither generic nor async.
pub(crate) fn check_sig(sig: &syn::Signature) -> syn::Result<()> {
    if !sig.generics.params.is_empty() {
        return Err(err(
            sig.generics.span(),
            "a remote function cannot be generic",
        ));
    }
    if sig.asyncness.is_some() {
        return Err(err(sig.span(), "a remote function cannot be async"));
    }
    Ok(())
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let returns = match num_returns(attr)? {
        Some(Returns::Streaming) => return crate::streaming::expand(syn::parse2(item)?),
        Some(Returns::Many(n)) => Some(n),
        None => None,
    };
    let f: ItemFn = syn::parse2(item)?;
    let sig = &f.sig;
    check_sig(sig)?;
    let name = &sig.ident;
    let vis = &f.vis;
    let ps = params::params(sig.inputs.iter())?;
    let (out_ty, convert) = params::output(&sig.output);
    let elems = match returns {
        Some(n) => {
            let span = match &sig.output {
                syn::ReturnType::Type(_, ty) => ty.span(),
                syn::ReturnType::Default => sig.ident.span(),
            };
            Some(elements(&out_ty, n, span)?)
        }
        None => None,
    };
    let g = params::generate(&ps);
    let params::Generated {
        sig: arg_sig,
        forward,
        prepare,
        resolve,
        call_args,
        wire_types,
        to_wire,
    } = g;
    let name_str = name.to_string();
    let options = format_ident!("{}_options", name);
    let doc = format!(
        "Remote task `{name_str}`: `{name_str}::remote(&rt, …)` submits it, \
         `{name_str}::options()` sets its options."
    );
    // With num_returns, the task stores its whole tuple (a hidden object, the
    // one a rank that runs it by id makes) and `remote` adds one projection
    // per element; without, `remote` returns the task's own ref.
    let (submit_fn, ret_ty, multi_remote) = match &elems {
        None => (
            format_ident!("remote"),
            quote!(::ferry::ObjectRef<#out_ty>),
            TokenStream::new(),
        ),
        Some(elems) => {
            let ret_ty = quote!((#(::ferry::ObjectRef<#elems>,)*));
            let picks = elems.iter().enumerate().map(|(i, ty)| {
                let index = syn::Index::from(i);
                let label = format!("{name_str}[{i}]");
                quote! {
                    ::ferry::__private::project::<#out_ty, #ty>(rt, #label, &__ferry_whole, |t| &t.#index)?
                }
            });
            let body = quote! {
                /// Submits the task with these options: one ref per element
                /// of the tuple it returns (Ray's `num_returns`).
                pub fn remote(self, rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<#ret_ty> {
                    let __ferry_whole = self.__ferry_submit(rt, #(#forward),*)?;
                    ::core::result::Result::Ok((#(#picks,)*))
                }
            };
            (format_ident!("__ferry_submit"), ret_ty, body)
        }
    };
    let hidden = if elems.is_some() {
        quote!(#[doc(hidden)])
    } else {
        TokenStream::new()
    };
    let options_doc =
        format!("Options for one submission of `{name_str}` (Ray's `.options(...)`).");
    // A braced struct lives in the type namespace only, so it can share the
    // function's name (`square::remote(…)` beside `square(…)`), and unlike a
    // module it also works for functions defined inside a function body.
    Ok(quote! {
        #f

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {}

        #[doc = #options_doc]
        #[allow(non_camel_case_types)]
        #[must_use]
        #vis struct #options {
            opts: ::ferry::TaskOptions,
        }

        #[allow(clippy::too_many_arguments, clippy::unused_unit, dead_code)]
        impl #name {
            /// The function's stable id (a hash of its path, `module::name`),
            /// the same in every copy of this binary.
            pub const ID: u64 = ::ferry::__private::stable_id(concat!(module_path!(), "::", #name_str));

            /// Options for one submission (Ray's `.options(...)`).
            pub fn options() -> #options {
                #options { opts: ::ferry::TaskOptions::default() }
            }

            /// Submits the task with default options (Ray's `.remote(...)`).
            pub fn remote(rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<#ret_ty> {
                Self::options().remote(rt, #(#forward),*)
            }

            /// Encodes a call for running later by [`ID`](Self::ID) (on any rank of this binary).
            pub fn encode(rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<::ferry::__private::EncodedCall> {
                ::ferry::__private::encode_call(rt, Self::ID, &(#(#to_wire,)*))
            }

            fn __ferry_invoke(
                rt: &::ferry::Runtime,
                opts: &::ferry::TaskOptions,
                bytes: &[u8],
            ) -> ::ferry::Result<::ferry::ObjectRef<::ferry::__private::Untyped>> {
                let (#(#forward,)*): (#(#wire_types,)*) = ::ferry::__private::decode_args(rt, bytes)?;
                let options = #options { opts: opts.clone() };
                ::core::result::Result::Ok(options.#submit_fn(rt, #(#forward),*)?.cast())
            }
        }

        ::ferry::__private::inventory::submit! {
            ::ferry::__private::RemoteFn {
                id: #name::ID,
                path: concat!(module_path!(), "::", #name_str),
                invoke: #name::__ferry_invoke,
            }
        }

        #[allow(clippy::too_many_arguments, clippy::unused_unit)]
        impl #options {
            ::ferry::__builder_methods!(task);

            #multi_remote

            /// Submits the task with these options.
            #hidden
            pub fn #submit_fn(self, rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<::ferry::ObjectRef<#out_ty>> {
                let mut __ferry_deps = ::ferry::__private::Deps::default();
                #prepare
                let __ferry_args = (#(#forward,)*);
                if let ::core::option::Option::Some(sent) = ::ferry::__private::try_remote::<#out_ty>(
                    rt,
                    #name_str,
                    &self.opts,
                    &__ferry_deps,
                    #name::ID,
                    || ::ferry::__private::encode_call(rt, #name::ID, &__ferry_args),
                ) {
                    return sent;
                }
                let mut __ferry_stash = ::core::option::Option::Some(__ferry_args);
                ::ferry::__private::submit(rt, #name_str, &self.opts, __ferry_deps, move |rt: &::ferry::Runtime| {
                    let (#(#forward,)*) = ::ferry::__private::args_for_attempt(&mut __ferry_stash, |s| {
                        #[allow(unused_imports)]
                        use ::ferry::__private::{ViaClone as _, ViaNoClone as _};
                        (&&::ferry::__private::CloneProbe(s)).maybe_clone()
                    })?;
                    #resolve
                    let _ = rt;
                    #convert(#name(#(#call_args),*))
                })
            }
        }
    })
}
