//! `#[ferry::remote(num_returns = "streaming")]`: a function returning an
//! iterator becomes a task whose `remote` gives an `ObjectRefGenerator`
//! (see `ferry_core::private::streaming` for how it runs).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{GenericArgument, ItemFn, PathArguments, Type, TypeParamBound};

use crate::params::{self, err};
use crate::remote::check_sig;

/// The type of each item a streaming function produces, and whether its
/// items are `Result`s (an `Err` ends the stream).
fn item_type(iter: &Type) -> (Type, bool) {
    impl_iterator_item(iter).unwrap_or_else(|| {
        (
            syn::parse_quote!(<#iter as ::core::iter::IntoIterator>::Item),
            false,
        )
    })
}

/// [`item_type`] of an `impl Iterator<Item = …>` type; `None` for any
/// other type.
pub(crate) fn impl_iterator_item(iter: &Type) -> Option<(Type, bool)> {
    if let Type::ImplTrait(t) = iter {
        for b in &t.bounds {
            let TypeParamBound::Trait(tb) = b else {
                continue;
            };
            let Some(seg) = tb.path.segments.last() else {
                continue;
            };
            if seg.ident != "Iterator" && seg.ident != "IntoIterator" {
                continue;
            }
            let PathArguments::AngleBracketed(a) = &seg.arguments else {
                continue;
            };
            for g in &a.args {
                if let GenericArgument::AssocType(at) = g
                    && at.ident == "Item"
                {
                    return Some(match ok_of(&at.ty) {
                        Some(ok) => (ok, true),
                        None => (at.ty.clone(), false),
                    });
                }
            }
        }
    }
    None
}

/// `T` when `ty` is `Result<T, E>`.
fn ok_of(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    a.args.iter().find_map(|g| match g {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

pub(crate) fn expand(f: ItemFn) -> syn::Result<TokenStream> {
    let sig = &f.sig;
    check_sig(sig)?;
    if matches!(sig.output, syn::ReturnType::Default) {
        return Err(err(
            sig.ident.span(),
            "num_returns = \"streaming\" needs a function returning an iterator \
             (impl Iterator<Item = T>, a concrete iterator type, or a Result of one)",
        ));
    }
    let name = &sig.ident;
    let vis = &f.vis;
    let ps = params::params(sig.inputs.iter())?;
    let (iter_ty, convert) = params::output(&sig.output);
    let (elem, fallible) = item_type(&iter_ty);
    let items = if fallible {
        quote!(items_fallible)
    } else {
        quote!(items_ok)
    };
    let params::Generated {
        sig: arg_sig,
        forward,
        prepare,
        resolve,
        call_args,
        wire_types,
        to_wire: _,
    } = params::generate(&ps);
    let name_str = name.to_string();
    let options = format_ident!("{}_options", name);
    let doc = format!(
        "Streaming task `{name_str}`: `{name_str}::remote(&rt, …)` submits it and gives \
         an `ObjectRefGenerator`, `{name_str}::options()` sets its options."
    );
    let options_doc =
        format!("Options for one submission of `{name_str}` (Ray's `.options(...)`).");
    let span = iter_ty.span();
    let gen_ty = quote::quote_spanned!(span=> ::ferry::ObjectRefGenerator<#elem>);
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

            /// Submits the task with default options: one ref per item it
            /// produces, as it produces them (Ray's `num_returns="streaming"`).
            pub fn remote(rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<#gen_ty> {
                Self::options().remote(rt, #(#forward),*)
            }

            fn __ferry_invoke(
                rt: &::ferry::Runtime,
                opts: &::ferry::TaskOptions,
                bytes: &[u8],
            ) -> ::ferry::Result<::ferry::ObjectRef<::ferry::__private::Untyped>> {
                let (__ferry_stream, #(#forward,)*): (::ferry::__private::StreamTarget, #(#wire_types,)*) =
                    ::ferry::__private::decode_args(rt, bytes)?;
                let options = #options { opts: opts.clone() };
                ::core::result::Result::Ok(options.__ferry_submit(rt, __ferry_stream, #(#forward),*)?.cast())
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

            /// Submits the task with these options: one ref per item it
            /// produces, as it produces them.
            pub fn remote(self, rt: &::ferry::Runtime, #(#arg_sig),*) -> ::ferry::Result<#gen_ty> {
                let (__ferry_stream, __ferry_state) = ::ferry::__private::open_stream(rt, &self.opts);
                let __ferry_done = self.__ferry_submit(rt, __ferry_stream, #(#forward),*);
                ::ferry::__private::generator(rt, __ferry_state, __ferry_done)
            }

            #[doc(hidden)]
            pub fn __ferry_submit(
                self,
                rt: &::ferry::Runtime,
                __ferry_stream: ::ferry::__private::StreamTarget,
                #(#arg_sig),*
            ) -> ::ferry::Result<::ferry::ObjectRef<u64>> {
                let mut __ferry_deps = ::ferry::__private::Deps::default();
                #prepare
                let __ferry_args = (__ferry_stream, #(#forward,)*);
                if let ::core::option::Option::Some(sent) = ::ferry::__private::try_remote::<u64>(
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
                    let (__ferry_stream, #(#forward,)*) = ::ferry::__private::args_for_attempt(&mut __ferry_stash, |s| {
                        #[allow(unused_imports)]
                        use ::ferry::__private::{ViaClone as _, ViaNoClone as _};
                        (&&::ferry::__private::CloneProbe(s)).maybe_clone()
                    })?;
                    #resolve
                    let __ferry_items = #convert(#name(#(#call_args),*))?;
                    ::ferry::__private::drain::<#elem>(rt, &__ferry_stream, ::ferry::__private::#items(__ferry_items))
                })
            }
        }
    })
}
