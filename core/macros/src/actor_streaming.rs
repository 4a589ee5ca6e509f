//! A streaming actor method: one returning `impl Iterator<Item = T>` (or a
//! `Result` of one) in a `#[ferry::actor]` impl gives, on the handle, a
//! call whose `remote()` is an `ObjectRefGenerator<T>` (Ray's generator
//! actor methods).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Type;

use crate::params::{self, Param};

/// The proxy of streaming method `m` on the handle (with the function that
/// runs a call that came from another rank), and its registration by id.
pub(crate) fn proxy(
    class: &syn::Ident,
    handle: &syn::Ident,
    m: &syn::ImplItemFn,
    ps: &[Param],
    convert: TokenStream,
    (elem, fallible): (Type, bool),
) -> (TokenStream, TokenStream) {
    let method = &m.sig.ident;
    let params::Generated {
        sig,
        forward,
        prepare,
        resolve,
        call_args,
        wire_types,
        to_wire: _,
    } = params::generate(ps);
    let items = if fallible {
        quote!(items_fallible)
    } else {
        quote!(items_ok)
    };
    // A `&self` method may run beside other `&self` calls (a threaded
    // actor); a `&mut self` one runs alone.
    let exclusive = matches!(
        m.sig.inputs.first(),
        Some(syn::FnArg::Receiver(r)) if r.mutability.is_some()
    );
    let (wrap, this) = if exclusive {
        (quote!(Exclusive), quote!(&mut #class))
    } else {
        (quote!(Shared), quote!(&#class))
    };
    let method_str = method.to_string();
    let class_str = class.to_string();
    let what = format!("{class}.{method_str}");
    let invoke = format_ident!("__ferry_invoke_{}", method);
    let call = format_ident!("__ferry_stream_{}", method);
    let doc = format!(
        "Calls streaming method `{class}::{method_str}` on the actor; `.remote()` gives \
         an `ObjectRefGenerator` of its items."
    );
    let id = quote!(::ferry::__private::stable_id(
        concat!(module_path!(), "::", #class_str, "::", #method_str)
    ));
    let registration = quote! {
        ::ferry::__private::inventory::submit! {
            ::ferry::__private::ActorMethodFn {
                id: #id,
                path: concat!(module_path!(), "::", #class_str, "::", #method_str),
                invoke: #handle::#invoke,
            }
        }
    };
    let methods = quote! {
        #[doc(hidden)]
        #[allow(clippy::unused_unit)]
        pub fn #invoke(
            rt: &::ferry::Runtime,
            actor: ::ferry::ActorId,
            bytes: &[u8],
        ) -> ::ferry::Result<::ferry::ObjectRef<::ferry::__private::Untyped>> {
            #[allow(unused_imports)]
            use ::ferry::__private::{ViaDecode as _, ViaNoDecode as _};
            let (__ferry_stream, #(#forward,)*): (::ferry::__private::StreamTarget, #(#wire_types,)*) =
                (&&::ferry::__private::DecodeProbe::<(::ferry::__private::StreamTarget, #(#wire_types,)*)>::new())
                    .maybe_decode(rt, bytes, #what)?;
            let __ferry_handle = ::ferry::__private::hosted_handle::<#class>(rt, actor)?;
            ::core::result::Result::Ok(__ferry_handle.#call(__ferry_stream, #(#forward),*).remote()?.cast())
        }

        #[doc(hidden)]
        #[allow(clippy::too_many_arguments)]
        pub fn #call(&self, __ferry_stream: ::ferry::__private::StreamTarget, #(#sig),*) -> ::ferry::ActorCall<
            '_,
            #class,
            u64,
            impl ::ferry::__private::MethodBody<#class, u64>,
        > {
            let mut __ferry_deps = ::ferry::__private::Deps::default();
            #prepare
            let __ferry_args = (__ferry_stream, #(#forward,)*);
            let __ferry_encoded = self.inner.remote_runtime().map(|rt| {
                #[allow(unused_imports)]
                use ::ferry::__private::{ViaEncode as _, ViaNoEncode as _};
                (&&::ferry::__private::EncodeProbe(&__ferry_args)).maybe_encode(&rt, #id, #what)
            });
            if __ferry_encoded.is_none() {
                __ferry_deps.prefetch();
            }
            ::ferry::ActorCall::new(&self.inner, #method_str, __ferry_encoded, ::ferry::__private::#wrap(move |__ferry_this: #this, rt: &::ferry::Runtime| {
                let (__ferry_stream, #(#forward,)*) = __ferry_args;
                #resolve
                let __ferry_items = #convert(__ferry_this.#method(#(#call_args),*))?;
                ::ferry::__private::drain::<#elem>(rt, &__ferry_stream, ::ferry::__private::#items(__ferry_items))
            }))
        }

        #[doc = #doc]
        #[allow(clippy::too_many_arguments)]
        pub fn #method(&self, #(#sig),*) -> ::ferry::ActorStreamCall<
            '_,
            #elem,
            impl ::core::ops::FnOnce(::ferry::__private::StreamTarget) -> ::ferry::Result<::ferry::ObjectRef<u64>> + '_,
        > {
            // The arguments as owned `Arg`s, so the call outlives none of them.
            let mut __ferry_deps = ::ferry::__private::Deps::default();
            #prepare
            drop(__ferry_deps);
            ::ferry::ActorStreamCall::new(&self.inner, move |__ferry_stream| {
                self.#call(__ferry_stream, #(#forward),*).remote()
            })
        }
    };
    (methods, registration)
}
