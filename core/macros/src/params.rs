//! Reading a remote function's or method's parameters and return type.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Type};

/// How one parameter is passed.
pub(crate) enum Kind {
    /// A value (or a ref resolved to one).
    Value(Type),
    /// A `View<T>`: a ref or value, viewed without a copy.
    View(Type),
    /// A `Vec<View<T>>`: a list of refs or values, each a top-level
    /// argument (the call waits for every ref), each viewed without a copy.
    ViewList(Type),
    /// `&Runtime`: injected.
    Runtime,
}

pub(crate) struct Param {
    pub(crate) name: Ident,
    pub(crate) kind: Kind,
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn first_generic(seg: &syn::PathSegment) -> Option<Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// `T` when `ty` is `View<T>`.
fn view_of(ty: &Type) -> Option<Type> {
    last_segment(ty)
        .filter(|s| s.ident == "View")
        .and_then(first_generic)
}

/// `T` when `ty` is `Vec<View<T>>`.
fn view_list_of(ty: &Type) -> Option<Type> {
    last_segment(ty)
        .filter(|s| s.ident == "Vec")
        .and_then(first_generic)
        .and_then(|elem| view_of(&elem))
}

fn is_runtime_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => last_segment(&r.elem).is_some_and(|s| s.ident == "Runtime"),
        _ => false,
    }
}

/// The typed parameters (receivers are skipped).
pub(crate) fn params<'a>(inputs: impl Iterator<Item = &'a FnArg>) -> syn::Result<Vec<Param>> {
    let mut out = Vec::new();
    for (i, arg) in inputs.enumerate() {
        let FnArg::Typed(pt) = arg else { continue };
        // Hygienic (`mixed_site`): the generated code's own bindings (`rt`,
        // `id`, `bytes`, …) never meet a parameter of the same name.
        let name = match &*pt.pat {
            Pat::Ident(p) => {
                let mut n = p.ident.clone();
                n.set_span(Span::mixed_site());
                n
            }
            _ => Ident::new(&format!("__ferry_arg{i}"), Span::mixed_site()),
        };
        let ty = (*pt.ty).clone();
        let kind = if is_runtime_ref(&ty) {
            Kind::Runtime
        } else if let Some(inner) = view_of(&ty) {
            Kind::View(inner)
        } else if let Some(inner) = view_list_of(&ty) {
            Kind::ViewList(inner)
        } else {
            Kind::Value(ty)
        };
        out.push(Param { name, kind });
    }
    Ok(out)
}

/// The stored type of a return value and how to convert the raw return.
pub(crate) fn output(ret: &ReturnType) -> (Type, TokenStream) {
    match ret {
        ReturnType::Default => (syn::parse_quote!(()), quote!(::ferry::__private::ok)),
        ReturnType::Type(_, ty) => match last_segment(ty)
            .filter(|s| s.ident == "Result")
            .and_then(first_generic)
        {
            Some(ok) => (ok, quote!(::ferry::__private::fallible)),
            None => ((**ty).clone(), quote!(::ferry::__private::ok)),
        },
    }
}

/// Pieces of generated code for a parameter list.
pub(crate) struct Generated {
    /// `name: impl IntoArg<T>` (`impl IntoArgs<T>` for a list) for the
    /// `remote` signature.
    pub(crate) sig: Vec<TokenStream>,
    /// Names passed through to an inner call.
    pub(crate) forward: Vec<Ident>,
    /// `let name = IntoArg::into_arg(name);` and `deps.add(&name);` (for a
    /// list, `IntoArgs::into_args` and `deps.add_each`).
    pub(crate) prepare: TokenStream,
    /// Resolves each argument on the executing thread (`rt` in scope).
    pub(crate) resolve: TokenStream,
    /// The call's arguments, in order.
    pub(crate) call_args: Vec<TokenStream>,
    /// The encoded type of each forwarded argument: `Arg<T>` or `Args<T>`.
    pub(crate) wire_types: Vec<TokenStream>,
    /// Each forwarded argument (by name) made into its encoded type.
    pub(crate) to_wire: Vec<TokenStream>,
}

pub(crate) fn generate(params: &[Param]) -> Generated {
    let mut g = Generated {
        sig: Vec::new(),
        forward: Vec::new(),
        prepare: TokenStream::new(),
        resolve: TokenStream::new(),
        call_args: Vec::new(),
        wire_types: Vec::new(),
        to_wire: Vec::new(),
    };
    for p in params {
        let n = &p.name;
        match &p.kind {
            Kind::Runtime => g.call_args.push(quote!(rt)),
            Kind::Value(ty) | Kind::View(ty) => {
                g.sig.push(quote!(#n: impl ::ferry::IntoArg<#ty>));
                g.wire_types.push(quote!(::ferry::Arg<#ty>));
                g.to_wire
                    .push(quote!(::ferry::IntoArg::<#ty>::into_arg(#n)));
                g.forward.push(n.clone());
                g.prepare.extend(quote! {
                    let #n: ::ferry::Arg<#ty> = ::ferry::IntoArg::into_arg(#n);
                    __ferry_deps.add(&#n);
                });
                let conv = match &p.kind {
                    Kind::View(_) => quote!(into_view),
                    _ => quote!(into_value),
                };
                g.resolve.extend(quote! { let #n = #n.#conv(rt)?; });
                g.call_args.push(quote!(#n));
            }
            Kind::ViewList(ty) => {
                g.sig.push(quote!(#n: impl ::ferry::IntoArgs<#ty>));
                g.wire_types.push(quote!(::ferry::Args<#ty>));
                g.to_wire
                    .push(quote!(::ferry::IntoArgs::<#ty>::into_args(#n)));
                g.forward.push(n.clone());
                g.prepare.extend(quote! {
                    let #n: ::ferry::Args<#ty> = ::ferry::IntoArgs::into_args(#n);
                    __ferry_deps.add_each(&#n);
                });
                g.resolve.extend(quote! { let #n = #n.into_views(rt)?; });
                g.call_args.push(quote!(#n));
            }
        }
    }
    g
}

pub(crate) fn err(span: Span, msg: &str) -> syn::Error {
    syn::Error::new(span, msg)
}
