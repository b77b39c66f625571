//! `ferry token` and `ferry audit`: who may call the control plane, and what every
//! change was. Both need an admin token.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use ferry_sdk::{pb, AuditFilter, Error};

use crate::{
    duration::parse_duration,
    enums::{display, parse},
    json, output, Context,
};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once and never again
    ///
    /// An agent's token names its site: `ferry token create agent-fast --role agent
    /// --site fast --secret-file /etc/ferry/agent-fast.token`, then run the agent with
    /// FERRY_AGENT_TOKEN_FILE pointing at that file.
    Create {
        /// Unique name: lowercase letters, digits, '-', '_' and '.'
        name: String,
        /// viewer (reads), operator (plans and steers migrations), admin (everything),
        /// or agent (one site's agent)
        #[arg(long, value_parser = parse::<pb::Role>)]
        role: pb::Role,
        /// The site an agent token serves (id or name); only for --role agent
        #[arg(long)]
        site: Option<String>,
        /// How long the token lives, e.g. 30d or 12h [default: until revoked]
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// Write the secret to this new file (mode 0600) instead of printing it
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// List tokens (never their secrets)
    List {
        /// Revoked and expired tokens too
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token: within a second every call with it is refused, and the streams
    /// it opened end
    Revoke {
        /// The token's name or id
        token: String,
    },
}

/// Filters of `ferry audit`; each one given narrows the records.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Who, exactly as recorded: token:ci, token:admin cert:CN=ops, system:autopilot
    #[arg(long)]
    principal: Option<String>,
    /// What, exactly as recorded: site:fast, dataset:logs, job:<id>, token:ci
    #[arg(long)]
    resource: Option<String>,
    /// Which call, e.g. ferry.v1.SiteService/CreateSite
    #[arg(long)]
    method: Option<String>,
    /// Only records this recent, e.g. 1h or 7d
    #[arg(long, value_parser = parse_duration)]
    since: Option<Duration>,
    /// Only records older than this, e.g. 1h
    #[arg(long, value_parser = parse_duration)]
    until: Option<Duration>,
    /// At most this many records, newest first
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub async fn run(command: TokenCommand, ctx: &Context) -> Result<String, Error> {
    let client = ctx.client().await?;
    match command {
        TokenCommand::Create {
            name,
            role,
            site,
            expires_in,
            secret_file,
        } => {
            let expires = expires_in.map(|d| ago(d, -1));
            // Made before the token, so that a file that cannot be written costs nothing.
            let file = secret_file.as_deref().map(create_secret_file).transpose()?;
            let made = client
                .create_token(&name, role, site.as_deref(), expires)
                .await?;
            let token = made.token.clone().unwrap_or_default();
            if let (Some(path), Some(file)) = (&secret_file, file) {
                write_secret(file, path, &made.secret, &token.name)?;
                if ctx.json() {
                    return Ok(json::render(&json::ToJson::to_json(&token)));
                }
                return Ok(format!(
                    "{}\nsecret written to {}",
                    fields(&token),
                    path.display()
                ));
            }
            if ctx.json() {
                return Ok(json::render(&json::ToJson::to_json(&made)));
            }
            Ok(format!(
                "{}\nsecret         {}\n\nThe secret is shown this once: store it now.",
                fields(&token),
                made.secret
            ))
        }
        TokenCommand::List { all } => {
            let tokens = client.list_tokens(all).await?;
            if ctx.json() {
                return Ok(json::render(&json::array(&tokens)));
            }
            if tokens.is_empty() {
                return Ok("no tokens".to_owned());
            }
            Ok(table(&tokens))
        }
        TokenCommand::Revoke { token } => {
            let revoked = client.revoke_token(&token).await?;
            if ctx.json() {
                return Ok(json::render(&json::ToJson::to_json(&revoked)));
            }
            Ok(format!("revoked token {}", revoked.name))
        }
    }
}

/// `ferry whoami`: the caller's token as the control plane sees it.
pub async fn whoami(ctx: &Context) -> Result<String, Error> {
    let me = ctx.client().await?.who_am_i().await?;
    if ctx.json() {
        return Ok(json::render(&json::ToJson::to_json(&me)));
    }
    let mut f = output::Fields::new();
    f.add("name", me.name.as_str())
        .add("role", display::<pb::Role>(me.role))
        .add("site", output::or_none(&me.site))
        .add(
            "expires",
            match &me.expire_time {
                Some(_) => output::timestamp(me.expire_time.as_ref()),
                None => "never".to_owned(),
            },
        )
        .add("principal", me.principal.as_str());
    Ok(f.render())
}

pub async fn audit(args: AuditArgs, ctx: &Context) -> Result<String, Error> {
    let client = ctx.client().await?;
    let filter = AuditFilter {
        principal: args.principal,
        resource: args.resource,
        method: args.method,
        since: args.since.map(|d| ago(d, 1)),
        until: args.until.map(|d| ago(d, 1)),
    };
    let events = client.list_audit_events(&filter, args.limit).await?;
    if ctx.json() {
        return Ok(json::render(&json::array(&events)));
    }
    if events.is_empty() {
        return Ok("no audit records".to_owned());
    }
    let rows = events
        .iter()
        .map(|e| {
            vec![
                output::timestamp(e.time.as_ref()),
                e.principal.clone(),
                display::<pb::Role>(e.role),
                e.method.trim_start_matches("ferry.v1.").to_owned(),
                output::or_none(&e.resource),
                e.outcome.clone(),
                output::or_none(&e.summary),
            ]
        })
        .collect();
    Ok(output::table(
        &[
            "TIME",
            "PRINCIPAL",
            "ROLE",
            "METHOD",
            "RESOURCE",
            "OUTCOME",
            "SUMMARY",
        ],
        rows,
    ))
}

/// Now minus `d` (`sign` 1) or plus `d` (`sign` -1).
fn ago(d: Duration, sign: i32) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    if sign > 0 {
        Utc::now() - d
    } else {
        Utc::now() + d
    }
}

fn fields(t: &pb::Token) -> String {
    let mut f = output::Fields::new();
    f.add("name", t.name.as_str())
        .add("id", t.id.as_str())
        .add("role", display::<pb::Role>(t.role))
        .add("site", output::or_none(&t.site))
        .add("expires", expiry(t));
    f.render()
}

fn expiry(t: &pb::Token) -> String {
    match &t.expire_time {
        Some(_) => output::timestamp(t.expire_time.as_ref()),
        None => "never".to_owned(),
    }
}

fn table(tokens: &[pb::Token]) -> String {
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                display::<pb::Role>(t.role),
                output::or_none(&t.site),
                output::timestamp(t.create_time.as_ref()),
                expiry(t),
                t.revoke_time
                    .as_ref()
                    .map_or_else(|| output::NONE.to_owned(), |r| output::timestamp(Some(r))),
                t.created_by.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "ROLE",
            "SITE",
            "CREATED",
            "EXPIRES",
            "REVOKED",
            "CREATED BY",
        ],
        rows,
    )
}

/// A new file only this user may read, for a secret.
fn create_secret_file(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::InvalidInput(format!("--secret-file {}: {e}", path.display())))
}

fn write_secret(
    mut file: std::fs::File,
    path: &Path,
    secret: &str,
    name: &str,
) -> Result<(), Error> {
    writeln!(file, "{secret}")
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            Error::InvalidInput(format!(
                "token {name} was made but its secret could not be written to {}: {e}; \
                 revoke it (`ferry token revoke {name}`) and make another",
                path.display()
            ))
        })
}
