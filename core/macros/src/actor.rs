//! `#[ferry::actor]` on a struct (the class) and on its `impl` (the methods).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, Item, ItemImpl, ItemStruct, Type};

use crate::params::{self, Kind, err};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let checkpoint = match attr.to_string().as_str() {
        "" => false,
        "checkpoint" => true,
        _ => {
            return Err(err(
                attr.span(),
                "#[ferry::actor] takes no arguments but `checkpoint` (on the struct): \
                 set options with Class::options()",
            ));
        }
    };
    match syn::parse2::<Item>(item)? {
        Item::Struct(s) => class(s, checkpoint),
        Item::Impl(i) if !checkpoint => methods(i),
        Item::Impl(i) => Err(err(
            i.span(),
            "#[ferry::actor(checkpoint)] goes on the struct; its impl takes #[ferry::actor]",
        )),
        other => Err(err(
            other.span(),
            "#[ferry::actor] goes on a struct and on its impl block",
        )),
    }
}

fn class(s: ItemStruct, checkpoint: bool) -> syn::Result<TokenStream> {
    if !s.generics.params.is_empty() {
        return Err(err(s.generics.span(), "an actor class cannot be generic"));
    }
    let name = &s.ident;
    let vis = &s.vis;
    let handle = format_ident!("{}Handle", name);
    let options = format_ident!("{}Options", name);
    let name_str = name.to_string();
    let handle_doc = format!(
        "Remote methods of the actor `{name_str}`, reached through `ActorHandle<{name_str}>`."
    );
    let options_doc =
        format!("Options for creating a `{name_str}` actor; `.remote(&rt, …)` creates it.");
    let codec = if checkpoint {
        quote! {
            const CHECKPOINT: ::core::option::Option<::ferry::__private::Codec<Self>> =
                ::core::option::Option::Some(::ferry::__private::Codec::of());
        }
    } else {
        quote! {}
    };
    Ok(quote! {
        #s

        #[doc = #handle_doc]
        #vis struct #handle {
            inner: ::ferry::ActorRef<#name>,
        }

        impl ::core::convert::From<::ferry::ActorRef<#name>> for #handle {
            fn from(inner: ::ferry::ActorRef<#name>) -> Self {
                #handle { inner }
            }
        }

        impl ::core::convert::AsRef<::ferry::ActorRef<#name>> for #handle {
            fn as_ref(&self) -> &::ferry::ActorRef<#name> {
                &self.inner
            }
        }

        impl ::ferry::ActorClass for #name {
            type Handle = #handle;
            const NAME: &'static str = #name_str;
            const ID: u64 = ::ferry::__private::stable_id(concat!(module_path!(), "::", #name_str));
            #codec
            const ASYNC: bool = #name::__FERRY_ASYNC;
            fn share() -> ::core::option::Option<::ferry::__private::ShareFn<Self>> {
                #[allow(unused_imports)]
                use ::ferry::__private::{ViaNoSync as _, ViaSync as _};
                (&&::ferry::__private::SyncProbe::<Self>::new()).share()
            }
        }

        #[doc = #options_doc]
        #[must_use]
        #vis struct #options {
            opts: ::ferry::ActorOptions,
        }

        impl #options {
            ::ferry::__builder_methods!(actor);
        }
    })
}

fn methods(imp: ItemImpl) -> syn::Result<TokenStream> {
    if imp.trait_.is_some() {
        return Err(err(
            imp.span(),
            "#[ferry::actor] goes on the struct's inherent impl block, not a trait impl",
        ));
    }
    let Type::Path(self_path) = &*imp.self_ty else {
        return Err(err(imp.self_ty.span(), "expected the actor struct's name"));
    };
    let name = &self_path
        .path
        .segments
        .last()
        .ok_or_else(|| err(imp.self_ty.span(), "expected a type name"))?
        .ident;
    let handle = format_ident!("{}Handle", name);
    let options = format_ident!("{}Options", name);
    let name_str_ctor = name.to_string();
    let mut ctor = None;
    let mut any_async = false;
    let mut proxies = Vec::new();
    let mut registrations = Vec::new();
    for item in &imp.items {
        let ImplItem::Fn(m) = item else { continue };
        let receiver = m.sig.inputs.first().and_then(|a| match a {
            FnArg::Receiver(r) => Some(r),
            _ => None,
        });
        match receiver {
            None if m.sig.ident == "new" => ctor = Some(m),
            None => {}
            Some(r) if r.reference.is_none() => {
                return Err(err(
                    r.span(),
                    "actor methods take &self or &mut self (the actor keeps its state)",
                ));
            }
            Some(r) => {
                if let Some(a) = &m.sig.asyncness {
                    if r.mutability.is_some() {
                        return Err(err(
                            a.span(),
                            "an async actor method takes &self: its calls interleave at .await \
                             on the actor's one thread (keep mutable state in a Cell or RefCell)",
                        ));
                    }
                    any_async = true;
                }
                let (p, r) = proxy(name, &handle, m, r.mutability.is_some())?;
                proxies.push(p);
                registrations.push(r);
            }
        }
    }
    let ctor = ctor.ok_or_else(|| {
        err(
            imp.self_ty.span(),
            "an actor needs a constructor `fn new(…) -> Self` in this impl block",
        )
    })?;
    let ps = params::params(ctor.sig.inputs.iter())?;
    let mut sig = Vec::new();
    let mut names = Vec::new();
    let mut tys = Vec::new();
    for p in &ps {
        let n = &p.name;
        match &p.kind {
            Kind::Value(ty) => {
                sig.push(quote!(#n: #ty));
                names.push(n.clone());
                tys.push(ty.clone());
            }
            _ => {
                return Err(err(
                    ctor.sig.span(),
                    "actor constructor arguments are plain values (Clone, so a restart can re-run it)",
                ));
            }
        }
    }
    Ok(quote! {
        #imp

        impl #name {
            /// Creates the actor with default options (Ray's `Class.remote(...)`).
            pub fn remote(rt: &::ferry::Runtime, #(#sig),*) -> ::ferry::Result<::ferry::ActorHandle<#name>> {
                Self::options().remote(rt, #(#names),*)
            }

            /// Options for creating the actor (Ray's `Class.options(...)`).
            pub fn options() -> #options {
                #options { opts: ::ferry::ActorOptions::default() }
            }
        }

        impl #options {
            /// Creates the actor with these options.
            pub fn remote(self, rt: &::ferry::Runtime, #(#sig),*) -> ::ferry::Result<::ferry::ActorHandle<#name>> {
                // A copy for the case that the actor goes to another rank.
                let __ferry_args = (#(::core::clone::Clone::clone(&#names),)*);
                ::ferry::create_actor::<#name>(
                    rt,
                    &self.opts,
                    move |rt: &::ferry::Runtime| {
                        #[allow(unused_imports)]
                        use ::ferry::__private::{ViaEncode as _, ViaNoEncode as _};
                        (&&::ferry::__private::EncodeProbe(&__ferry_args)).maybe_encode(
                            rt,
                            <#name as ::ferry::ActorClass>::ID,
                            #name_str_ctor,
                        )
                    },
                    move || #name::new(#(::core::clone::Clone::clone(&#names)),*),
                )
            }
        }

        #[allow(clippy::unused_unit)]
        impl #name {
            /// Whether the class has `async fn` methods (an async actor).
            #[doc(hidden)]
            pub const __FERRY_ASYNC: bool = #any_async;

            #[doc(hidden)]
            fn __ferry_create(
                rt: &::ferry::Runtime,
                opts: &::ferry::ActorOptions,
                id: ::ferry::ActorId,
                bytes: &[u8],
            ) -> ::ferry::Result<()> {
                #[allow(unused_imports)]
                use ::ferry::__private::{ViaDecode as _, ViaNoDecode as _};
                let (#(#names,)*): (#(#tys,)*) = (&&::ferry::__private::DecodeProbe::<(#(#tys,)*)>::new())
                    .maybe_decode(rt, bytes, #name_str_ctor)?;
                ::ferry::__private::create_hosted::<#name>(rt, opts, id, move || {
                    #name::new(#(::core::clone::Clone::clone(&#names)),*)
                })
            }
        }

        ::ferry::__private::inventory::submit! {
            ::ferry::__private::ActorCtorFn {
                class: <#name as ::ferry::ActorClass>::ID,
                path: concat!(module_path!(), "::", #name_str_ctor),
                create: #name::__ferry_create,
            }
        }

        impl #handle {
            #(#proxies)*
        }

        #(#registrations)*
    })
}

/// A method's proxy on the handle (with the function that runs a call that
/// came from another rank), and its registration by id.
fn proxy(
    class: &syn::Ident,
    handle: &syn::Ident,
    m: &syn::ImplItemFn,
    exclusive: bool,
) -> syn::Result<(TokenStream, TokenStream)> {
    let method = &m.sig.ident;
    if !m.sig.generics.params.is_empty() {
        return Err(err(
            m.sig.generics.span(),
            "an actor method cannot be generic",
        ));
    }
    let ps = params::params(m.sig.inputs.iter())?;
    let (out_ty, convert) = params::output(&m.sig.output);
    if let Some(item) = crate::streaming::impl_iterator_item(&out_ty) {
        return Ok(crate::actor_streaming::proxy(
            class, handle, m, &ps, convert, item,
        ));
    }
    let params::Generated {
        sig,
        forward,
        prepare,
        resolve,
        call_args,
        wire_types,
        to_wire: _,
    } = params::generate(&ps);
    let method_str = method.to_string();
    let class_str = class.to_string();
    let body = if m.sig.asyncness.is_some() {
        quote! {
            ::ferry::__private::AsyncBody(move |__ferry_this: ::std::rc::Rc<#class>, __ferry_rt: &::ferry::Runtime| {
                let __ferry_rt = ::core::clone::Clone::clone(__ferry_rt);
                ::std::boxed::Box::pin(async move {
                    let rt = &__ferry_rt;
                    let (#(#forward,)*) = __ferry_args;
                    #resolve
                    let _ = rt;
                    #convert(__ferry_this.#method(#(#call_args),*).await)
                }) as ::ferry::__private::AsyncResult<#out_ty>
            })
        }
    } else {
        let (wrap, this) = if exclusive {
            (quote!(Exclusive), quote!(&mut #class))
        } else {
            (quote!(Shared), quote!(&#class))
        };
        quote! {
            ::ferry::__private::#wrap(move |__ferry_this: #this, rt: &::ferry::Runtime| {
                let (#(#forward,)*) = __ferry_args;
                #resolve
                let _ = rt;
                #convert(__ferry_this.#method(#(#call_args),*))
            })
        }
    };
    let what = format!("{class}.{method_str}");
    let invoke = format_ident!("__ferry_invoke_{}", method);
    let doc = format!("Calls `{class}::{method_str}` on the actor; `.remote()` submits it.");
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
            let (#(#forward,)*): (#(#wire_types,)*) =
                (&&::ferry::__private::DecodeProbe::<(#(#wire_types,)*)>::new())
                    .maybe_decode(rt, bytes, #what)?;
            let __ferry_handle = ::ferry::__private::hosted_handle::<#class>(rt, actor)?;
            ::core::result::Result::Ok(__ferry_handle.#method(#(#forward),*).remote()?.cast())
        }

        #[doc = #doc]
        #[allow(clippy::too_many_arguments)]
        pub fn #method(&self, #(#sig),*) -> ::ferry::ActorCall<
            '_,
            #class,
            #out_ty,
            impl ::ferry::__private::MethodBody<#class, #out_ty>,
        > {
            let mut __ferry_deps = ::ferry::__private::Deps::default();
            #prepare
            let __ferry_args = (#(#forward,)*);
            let __ferry_encoded = self.inner.remote_runtime().map(|rt| {
                #[allow(unused_imports)]
                use ::ferry::__private::{ViaEncode as _, ViaNoEncode as _};
                (&&::ferry::__private::EncodeProbe(&__ferry_args)).maybe_encode(&rt, #id, #what)
            });
            if __ferry_encoded.is_none() {
                // The actor is here: fetch borrowed arguments while the call waits its turn.
                __ferry_deps.prefetch();
            }
            ::ferry::ActorCall::new(&self.inner, #method_str, __ferry_encoded, #body)
        }
    };
    Ok((methods, registration))
}
