//! `#[ferry::remote]` on a function.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::params::{self, err};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(err(
            attr.span(),
            "#[ferry::remote] takes no arguments: set options with f::options()",
        ));
    }
    let f: ItemFn = syn::parse2(item)?;
    let sig = &f.sig;
    if !sig.generics.params.is_empty() {
        return Err(err(
            sig.generics.span(),
            "a remote function cannot be generic",
        ));
    }
    if sig.asyncness.is_some() {
        return Err(err(sig.span(), "a remote function cannot be async"));
    }
    let name = &sig.ident;
    let vis = &f.vis;
    let ps = params::params(sig.inputs.iter())?;
    let (out_ty, convert) = params::output(&sig.output);
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
            pub fn remote(rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<::ferry::ObjectRef<#out_ty>> {
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
                ::core::result::Result::Ok(options.remote(rt, #(#forward),*)?.cast())
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

            /// Submits the task with these options.
            pub fn remote(self, rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<::ferry::ObjectRef<#out_ty>> {
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
