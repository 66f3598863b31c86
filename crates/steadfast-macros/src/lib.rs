//! `#[steadfast::retry]`: run a function's body under a retry policy. Use it through the
//! `steadfast` crate's `macros` feature; see `steadfast::retry` (the attribute) for the docs.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, GenericArgument, ItemFn, Lit, LitStr, Meta, Pat, PathArguments, ReturnType,
    Token, Type,
};

/// Runs the function's body under a retry policy; the return type `Result<T, E>` becomes
/// `Result<T, steadfast::Error<E>>`.
///
/// `#[retry("svc.Method")]` uses the key's plan in the process-wide executor;
/// `#[retry(max_attempts = 5, backoff = "exponential", base = "100ms", max = "10s",
/// jitter = "full", attempt_timeout = "2s", total_timeout = "30s")]` builds a policy from
/// options checked now. Each attempt gets clones of the arguments (references clone freely).
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as Args);
    let item = syn::parse_macro_input!(item as ItemFn);
    expand(args, item)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

enum Args {
    Key(LitStr),
    Options(Vec<(syn::Ident, Lit)>),
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let key: LitStr = input.parse()?;
            if !input.is_empty() {
                return Err(input.error("expected only the key, like #[retry(\"svc.Method\")]"));
            }
            return Ok(Args::Key(key));
        }
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        let mut options = Vec::new();
        for meta in metas {
            let Meta::NameValue(nv) = meta else {
                return Err(Error::new(meta.span(), "expected `name = value`"));
            };
            let Some(name) = nv.path.get_ident().cloned() else {
                return Err(Error::new(nv.path.span(), "expected an option name"));
            };
            let syn::Expr::Lit(lit) = nv.value else {
                return Err(Error::new(nv.value.span(), "expected a literal value"));
            };
            options.push((name, lit.lit));
        }
        if options.is_empty() {
            return Err(input.error(
                "expected a key (#[retry(\"svc.Method\")]) or options (#[retry(max_attempts = 3)])",
            ));
        }
        Ok(Args::Options(options))
    }
}

/// Parses `250ms`, `1.5s`, `2m`, `1h30m`, `500us`, `10ns` into nanoseconds.
fn duration(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let err = || {
        Error::new(
            lit.span(),
            format!("expected a duration like \"250ms\" or \"1m30s\", got {text:?}"),
        )
    };
    let mut total: f64 = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err());
    }
    Ok(total.round() as u64)
}

fn string(lit: &Lit, name: &syn::Ident) -> syn::Result<LitStr> {
    match lit {
        Lit::Str(s) => Ok(s.clone()),
        other => Err(Error::new(other.span(), format!("`{name}` takes a string"))),
    }
}

fn integer(lit: &Lit, name: &syn::Ident) -> syn::Result<u64> {
    match lit {
        Lit::Int(i) => i.base10_parse(),
        other => Err(Error::new(
            other.span(),
            format!("`{name}` takes an integer"),
        )),
    }
}

/// The policy expression for inline options, checked here so a bad value fails to compile.
fn policy(options: Vec<(syn::Ident, Lit)>) -> syn::Result<Tokens> {
    let mut kind = quote!(exponential);
    let mut kind_name = String::from("exponential");
    let mut base: Option<(u64, Span)> = None;
    let mut max: Option<(u64, Span)> = None;
    let mut setters = Vec::new();
    let mut factor: Option<f64> = None;
    for (name, lit) in &options {
        match name.to_string().as_str() {
            "max_attempts" => {
                let n = integer(lit, name)?;
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(Error::new(
                        lit.span(),
                        "`max_attempts` must be between 1 and 4294967295",
                    ));
                }
                let n = n as u32;
                setters.push(quote!(.max_attempts(#n)));
            }
            "backoff" => {
                let s = string(lit, name)?;
                kind_name = s.value();
                kind = match kind_name.as_str() {
                    "immediate" | "fixed" | "linear" | "exponential" | "fibonacci"
                    | "decorrelated" => {
                        let ident = syn::Ident::new(&kind_name, s.span());
                        quote!(#ident)
                    }
                    other => {
                        return Err(Error::new(
                            s.span(),
                            format!(
                                "unknown backoff {other:?}: expected immediate, fixed, linear, exponential, fibonacci or decorrelated"
                            ),
                        ));
                    }
                };
            }
            "base" => base = Some((duration(&string(lit, name)?)?, lit.span())),
            "max" => max = Some((duration(&string(lit, name)?)?, lit.span())),
            "factor" => {
                let f = match lit {
                    Lit::Float(f) => f.base10_parse::<f64>()?,
                    Lit::Int(i) => i.base10_parse::<f64>()?,
                    other => return Err(Error::new(other.span(), "`factor` takes a number")),
                };
                if !(f > 1.0 && f.is_finite()) {
                    return Err(Error::new(lit.span(), "`factor` must be > 1"));
                }
                factor = Some(f);
            }
            "jitter" => {
                let s = string(lit, name)?;
                let j = match s.value().as_str() {
                    "none" => quote!(::steadfast::Jitter::None),
                    "full" => quote!(::steadfast::Jitter::Full),
                    "equal" => quote!(::steadfast::Jitter::Equal),
                    other => {
                        return Err(Error::new(
                            s.span(),
                            format!("unknown jitter {other:?}: expected none, full or equal"),
                        ));
                    }
                };
                setters.push(quote!(.jitter(#j)));
            }
            "attempt_timeout" | "total_timeout" => {
                let nanos = duration(&string(lit, name)?)?;
                if nanos == 0 {
                    return Err(Error::new(lit.span(), format!("`{name}` must be > 0")));
                }
                setters.push(quote!(.#name(::core::time::Duration::from_nanos(#nanos))));
            }
            other => {
                return Err(Error::new(
                    name.span(),
                    format!(
                        "unknown option `{other}`: expected max_attempts, backoff, base, max, factor, jitter, attempt_timeout or total_timeout"
                    ),
                ));
            }
        }
    }
    let base_nanos = match (base, kind_name.as_str()) {
        (None, "immediate") => 0,
        (None, _) => 100_000_000,
        (Some((0, span)), k) if k != "immediate" => {
            return Err(Error::new(span, "`base` must be > 0"));
        }
        (Some((n, _)), _) => n,
    };
    if let Some((m, span)) = max
        && m < base_nanos
    {
        return Err(Error::new(span, "`max` must be >= `base`"));
    }
    let ctor = if kind_name == "immediate" {
        quote!(::steadfast::Retry::immediate())
    } else {
        quote!(::steadfast::Retry::#kind(::core::time::Duration::from_nanos(#base_nanos)))
    };
    let max = max.map(|(m, _)| quote!(.max_delay(::core::time::Duration::from_nanos(#m))));
    let factor = factor.map(|f| quote!(.factor(#f)));
    Ok(quote! {
        {
            static POLICY: ::std::sync::OnceLock<::steadfast::Retry> = ::std::sync::OnceLock::new();
            // The options were checked when the macro expanded; the fallback never applies.
            POLICY.get_or_init(|| #ctor #max #factor #(#setters)* .build().unwrap_or_default())
        }
    })
}

/// `Result<T, E>` → `Result<T, steadfast::Error<E>>`.
fn wrap_return(output: &ReturnType, name: &syn::Ident) -> syn::Result<Type> {
    let span = match output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => name.span(),
    };
    let err = || Error::new(span, "#[retry] needs a function returning Result<T, E>");
    let ReturnType::Type(_, ty) = output else {
        return Err(err());
    };
    let mut ty = (**ty).clone();
    let Type::Path(path) = &mut ty else {
        return Err(err());
    };
    let last = path.path.segments.last_mut().ok_or_else(err)?;
    if last.ident != "Result" {
        return Err(err());
    }
    let PathArguments::AngleBracketed(args) = &mut last.arguments else {
        return Err(err());
    };
    if args.args.len() != 2 {
        return Err(err());
    }
    let Some(GenericArgument::Type(e)) = args.args.iter_mut().nth(1) else {
        return Err(err());
    };
    let inner = e.clone();
    *e = syn::parse_quote!(::steadfast::Error<#inner>);
    Ok(ty)
}

fn expand(args: Args, mut item: ItemFn) -> syn::Result<Tokens> {
    let new_output = wrap_return(&item.sig.output, &item.sig.ident)?;
    let mut clones = Vec::new();
    for input in &item.sig.inputs {
        match input {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(id) => {
                    let name = &id.ident;
                    clones.push(quote_spanned!(pt.span()=> let #name = ::core::clone::Clone::clone(&#name);));
                }
                other => {
                    return Err(Error::new(
                        other.span(),
                        "#[retry] needs plain argument names (no patterns)",
                    ));
                }
            },
            FnArg::Receiver(r) => {
                return Err(Error::new(
                    r.span(),
                    "#[retry] does not support methods taking self yet",
                ));
            }
        }
    }
    let body = &item.block;
    let is_async = item.sig.asyncness.is_some();
    let new_body = match (&args, is_async) {
        (Args::Key(key), true) => quote!({
            ::steadfast::run(#key, || { #(#clones)* async move #body }).await
        }),
        (Args::Key(key), false) => quote!({
            ::steadfast::run_blocking(#key, || { #(#clones)* #body })
        }),
        (Args::Options(options), true) => {
            let policy = policy(options.clone())?;
            quote!({ #policy.run(|| { #(#clones)* async move #body }).await })
        }
        (Args::Options(options), false) => {
            let policy = policy(options.clone())?;
            quote!({ #policy.run_blocking(|| { #(#clones)* #body }) })
        }
    };
    if let Args::Key(key) = &args
        && let Err(e) = check_key(&key.value())
    {
        return Err(Error::new(key.span(), e));
    }
    item.sig.output = syn::parse_quote!(-> #new_output);
    item.block = syn::parse2(new_body)?;
    Ok(quote!(#item))
}

/// The same rules as `steadfast::Key::parse`, so a bad key fails to compile.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty; expected namespace.Name".into());
    }
    if !key.contains('.') {
        return Err(format!("key {key:?}: expected namespace.Name, with a dot"));
    }
    for (i, segment) in key.split('.').enumerate() {
        if segment.is_empty() {
            return Err(format!("key {key:?}: empty segment {i}"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(format!(
                "key {key:?}: {c:?} is not allowed (letters, digits, '_' and '-' between dots)"
            ));
        }
    }
    Ok(())
}
