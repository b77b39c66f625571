//! `ferry nats-user`: the nats-server user entry of the control plane or of one site's
//! agents, with the subject permissions that confine an agent to its own site's work.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use base64::Engine;
use clap::Args;
use ferry_proto::bus::{agent_permissions, nats_user_entry};
use ferry_sdk::Error;

use crate::Context;

/// bcrypt's work factor for the hash in the entry, as `nats server passwd` uses.
const BCRYPT_COST: u32 = 11;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["site", "control_plane"])))]
pub struct NatsUserArgs {
    /// The site (id or name) whose agents use this user: it may take only that site's
    /// tasks, report only under it and read only its own replies
    #[arg(long)]
    site: Option<String>,
    /// The control plane's user instead, which may do anything
    #[arg(long)]
    control_plane: bool,
    /// The password: read from this file's first line; if the file does not exist, a
    /// new random password is written to it (mode 0600). Give the same file to the
    /// agents (FERRY_AGENT_NATS_PASSWORD_FILE) or the control plane
    /// (FERRY_NATS__PASSWORD_FILE)
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,
    /// The user's name [default: ferry-agent-<site name>, or ferry-control-plane]
    #[arg(long)]
    user: Option<String>,
}

pub async fn run(args: NatsUserArgs, ctx: &Context) -> Result<String, Error> {
    // The site first: a wrong one must not leave a password file behind.
    let site = match &args.site {
        Some(site) => Some(ctx.client().await?.get_site(site).await?),
        None => None,
    };
    let user = match (&args.user, &site) {
        (Some(user), _) => user.clone(),
        (None, Some(site)) => format!("ferry-agent-{}", site.name),
        (None, None) => "ferry-control-plane".to_owned(),
    };
    if user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '"') {
        return Err(Error::InvalidInput(format!(
            "--user: '{user}' must be a non-empty name without spaces or quotes"
        )));
    }
    let (password, created) = password(&args.password_file)?;
    let hash = bcrypt::hash_with_result(&password, BCRYPT_COST)
        .map_err(|e| Error::InvalidInput(format!("hashing the password: {e}")))?
        .format_for_version(bcrypt::Version::TwoA);
    let (comment, entry) = match &site {
        Some(site) => (
            format!(
                "# NATS user of the agents of site {} ({}): they take only this site's tasks,\n\
                 # report only under it and read only their own replies. Run each agent with\n\
                 # FERRY_AGENT_NATS_USER={user} FERRY_AGENT_NATS_PASSWORD_FILE={}",
                site.name,
                site.id,
                args.password_file.display()
            ),
            nats_user_entry(&user, &hash, Some(&agent_permissions(&site.id))),
        ),
        None => (
            format!(
                "# NATS user of the control plane. Run it with\n\
                 # FERRY_NATS__USER={user} FERRY_NATS__PASSWORD_FILE={}",
                args.password_file.display()
            ),
            nats_user_entry(&user, &hash, None),
        ),
    };
    if created {
        eprintln!(
            "wrote a new password to {} (mode 0600)",
            args.password_file.display()
        );
    }
    if ctx.json() {
        return Ok(crate::json::render(&serde_json::json!({
            "user": user,
            "site": site.as_ref().map(|s| s.id.clone()),
            "password_file": args.password_file.display().to_string(),
            "entry": entry,
        })));
    }
    Ok(format!(
        "# Add to the `users` of nats-server's `authorization` block, then reload it\n\
         # (nats-server --signal reload). The password is stored as a bcrypt hash.\n\
         {comment}\n{entry}"
    ))
}

/// The password in `path`, or a new one (192 random bits) written there; and whether it
/// is new.
fn password(path: &Path) -> Result<(String, bool), Error> {
    let bad =
        |e: std::io::Error| Error::InvalidInput(format!("--password-file {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let line = text.lines().next().unwrap_or_default().trim();
            if line.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "--password-file {}: the file is empty",
                    path.display()
                )));
            }
            Ok((line.to_owned(), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut bytes = [0u8; 24];
            rand::fill(&mut bytes);
            let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(bad)?;
            writeln!(file, "{password}")
                .and_then(|()| file.sync_all())
                .map_err(bad)?;
            Ok((password, true))
        }
        Err(e) => Err(bad(e)),
    }
}
