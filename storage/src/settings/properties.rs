//! Options and credentials come from users: any maps, for any scheme, get a backend or
//! an error naming the field, never a panic; an accepted site reaches only the host its
//! settings name; and well-formed settings of every scheme are accepted.

use proptest::prelude::*;
use url::Url;

use super::*;

const URIS: &[&str] = &[
    "file:///srv",
    "memory://",
    "s3://bucket/p",
    "gs://bucket",
    "azblob://container/p",
];

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Keys every scheme knows, mixed with keys none does.
fn key() -> impl Strategy<Value = String> {
    let known: Vec<&str> = [Scheme::S3, Scheme::Gcs, Scheme::Azblob]
        .into_iter()
        .flat_map(|s| option_keys(s).iter().chain(credential_keys(s)))
        .copied()
        .collect();
    prop_oneof![
        4 => prop::sample::select(known).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// Values of every shape a setting takes, and nonsense.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        "https?://[a-z0-9.-]{1,12}(:[0-9]{1,5})?(/[a-z]{0,5})?",
        "[a-z0-9]{3,24}",
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        "[a-z0-9]{1,6}[/@:#?. ][a-z0-9.]{0,8}",
        Just(base64(r#"{"type": "service_account"}"#)),
        "[A-Za-z0-9+/]{0,12}={0,2}",
        any::<String>(),
    ]
}

type Site = (
    &'static str,
    BTreeMap<String, String>,
    BTreeMap<String, SecretString>,
);

/// A site with maps of any keys and values.
fn any_site() -> impl Strategy<Value = Site> {
    (
        prop::sample::select(URIS),
        prop::collection::btree_map(key(), value(), 0..4),
        prop::collection::btree_map(key(), value().prop_map(SecretString::from), 0..4),
    )
}

/// A site with one option its scheme knows, set to any value: each option's own
/// check, reached far more often than by random maps.
fn one_known_option() -> impl Strategy<Value = Site> {
    let known: Vec<(&'static str, &'static str)> = URIS
        .iter()
        .filter_map(|uri| Some((*uri, option_keys(SiteUri::parse(uri).ok()?.scheme()))))
        .flat_map(|(uri, keys)| keys.iter().map(move |k| (uri, *k)))
        .collect();
    (prop::sample::select(known), value()).prop_map(|((uri, key), value)| {
        (
            uri,
            BTreeMap::from([(key.to_owned(), value)]),
            BTreeMap::new(),
        )
    })
}

/// The host an accepted backend sends requests to, as OpenDAL derives it; `None` for
/// local backends and Google's fixed endpoint.
fn request_host(backend: &Backend) -> Option<String> {
    let url = match backend {
        Backend::S3(s) => match &s.endpoint {
            Some(e) => e.clone(),
            None => format!("https://s3.{}.amazonaws.com", s.region),
        },
        Backend::Gcs(s) => s.endpoint.clone()?,
        Backend::Azblob(s) => s.endpoint.clone(),
        Backend::File { .. } | Backend::Memory { .. } => return None,
    };
    Url::parse(&url)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

/// The host the settings name: the endpoint's, else the provider's for the region or
/// account.
fn named_host(backend: &Backend, options: &BTreeMap<String, String>) -> Option<String> {
    let host = match (backend, options.get("endpoint")) {
        (_, Some(endpoint)) => Url::parse(endpoint).ok()?.host_str()?.to_owned(),
        (Backend::S3(s), None) => format!("s3.{}.amazonaws.com", s.region),
        (Backend::Azblob(s), None) => {
            format!("{}.blob.core.windows.net", s.account_name.as_deref()?)
        }
        _ => return None,
    };
    Some(host.to_ascii_lowercase())
}

/// Builds a site from the settings a strategy chose.
fn site(uri: &'static str, options: Vec<(&str, String)>, credentials: Vec<(&str, String)>) -> Site {
    let options = options.into_iter().map(|(k, v)| (k.to_owned(), v));
    let credentials = credentials
        .into_iter()
        .map(|(k, v)| (k.to_owned(), SecretString::from(v)));
    (uri, options.collect(), credentials.collect())
}

fn well_formed_s3() -> impl Strategy<Value = Site> {
    (
        prop::option::of("https?://[a-z][a-z0-9-]{0,11}(\\.[a-z]{2,5})?(:[1-9][0-9]{1,3})?"),
        prop::option::of("[a-z]{2}-[a-z]{4,9}-[1-9]"),
        prop::option::of(any::<bool>()),
        prop::option::of((
            "[A-Z0-9]{16,20}",
            "[A-Za-z0-9/+]{40}",
            prop::option::of("[A-Za-z0-9/+=]{20,80}"),
        )),
    )
        .prop_map(|(endpoint, region, path_style, keys)| {
            let mut o = vec![];
            let mut c = vec![];
            o.extend(endpoint.map(|v| ("endpoint", v)));
            o.extend(region.map(|v| ("region", v)));
            o.extend(path_style.map(|v| ("force_path_style", v.to_string())));
            if let Some((access, secret, token)) = keys {
                c.push(("access_key_id", access));
                c.push(("secret_access_key", secret));
                c.extend(token.map(|v| ("session_token", v)));
            }
            site("s3://bucket/p", o, c)
        })
}

fn well_formed_gcs() -> impl Strategy<Value = Site> {
    (
        prop::option::of("https?://[a-z][a-z0-9-]{0,11}(:[1-9][0-9]{1,3})?"),
        prop::option::of("[a-z0-9-]{1,20}@[a-z0-9-]{1,20}\\.iam\\.gserviceaccount\\.com"),
    )
        .prop_map(|(endpoint, email)| {
            let key = |email: String| {
                let json = serde_json::json!({"type": "service_account", "client_email": email});
                base64(&json.to_string())
            };
            let o = endpoint.map(|v| ("endpoint", v)).into_iter().collect();
            let c = email.map(|e| ("credential", key(e))).into_iter().collect();
            site("gs://bucket", o, c)
        })
}

fn well_formed_azblob() -> impl Strategy<Value = Site> {
    (
        prop::option::of("https?://[a-z][a-z0-9-]{0,11}(:[1-9][0-9]{1,3})?(/[a-z0-9]{1,16})?"),
        prop::option::of((
            "[a-z0-9]{3,24}",
            prop::option::of(prop::collection::vec(any::<u8>(), 1..64)),
        )),
        prop::option::of("sv=[0-9-]{10}&sig=[A-Za-z0-9%]{10,40}"),
    )
        .prop_filter("an endpoint or an account", |(e, a, _)| {
            e.is_some() || a.is_some()
        })
        .prop_map(|(endpoint, account, sas)| {
            let mut o = vec![];
            let mut c = vec![];
            o.extend(endpoint.map(|v| ("endpoint", v)));
            if let Some((name, key)) = account {
                o.push(("account_name", name));
                let key = key.map(|k| base64::engine::general_purpose::STANDARD.encode(k));
                c.extend(key.map(|k| ("account_key", k)));
            }
            c.extend(sas.map(|v| ("sas_token", v)));
            site("azblob://container/p", o, c)
        })
}

proptest! {
    #[test]
    fn any_settings_get_a_backend_or_an_error_naming_the_field(
        (uri, options, credentials) in prop_oneof![any_site(), one_known_option()],
    ) {
        match Backend::parse(uri, &options, &credentials) {
            Ok(backend) => {
                let scheme = backend.scheme();
                prop_assert!(options.keys().all(|k| option_keys(scheme).contains(&k.as_str())));
                prop_assert!(credentials.keys().all(|k| credential_keys(scheme).contains(&k.as_str())));
                prop_assert_eq!(request_host(&backend), named_host(&backend, &options));
            }
            Err(e) => {
                prop_assert!(
                    matches!(e.field.as_str(), "uri" | "options" | "credentials")
                        || options.keys().any(|k| e.field == format!("options[{k}]"))
                        || credentials.keys().any(|k| e.field == format!("credentials[{k}]")),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn well_formed_settings_of_every_scheme_are_accepted(
        (uri, options, credentials) in prop_oneof![well_formed_s3(), well_formed_gcs(), well_formed_azblob()],
    ) {
        let backend = Backend::parse(uri, &options, &credentials);
        prop_assert!(backend.is_ok(), "{uri} {options:?}: {:?}", backend.err());
    }
}
