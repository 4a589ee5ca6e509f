//! `#[ferry::main]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::params::err;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(err(attr.span(), "#[ferry::main] takes no arguments"));
    }
    let mut f: ItemFn = syn::parse2(item)?;
    if f.sig.inputs.len() != 1 {
        return Err(err(
            f.sig.inputs.span(),
            "#[ferry::main] expects fn main(rt: ferry::Runtime) -> ferry::Result<()>",
        ));
    }
    let attrs = std::mem::take(&mut f.attrs);
    f.sig.ident = syn::Ident::new("__ferry_main_body", f.sig.ident.span());
    Ok(quote! {
        #(#attrs)*
        fn main() -> ::std::process::ExitCode {
            #f
            ::ferry::__private::run_main(__ferry_main_body)
        }
    })
}
