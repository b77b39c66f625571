//! The NATS side of the protocol: stream and subject names, and what an agent of one
//! site may publish and subscribe to. The control plane, the agent, the CLI (which
//! writes nats-server user entries) and the test harness all read them from here, so
//! the permissions an operator installs always match the subjects the code uses.
//!
//! Subjects carry ids, never names: a site's id never changes and holds no `.`, `*` or
//! `>`, so it is always a single subject token.

/// Migration tasks, one subject per executing site: `ferry.jobs.<site id>`.
pub const JOBS_STREAM: &str = "FERRY_JOBS";
/// Agents' progress reports: `ferry.progress.<site id>.<job id>`.
pub const PROGRESS_STREAM: &str = "FERRY_PROGRESS";
/// Recorded access events: `ferry.events.access.<dataset id>`.
pub const EVENTS_STREAM: &str = "FERRY_EVENTS";

/// The subject of a site's tasks.
pub fn jobs_subject(site_id: &str) -> String {
    format!("ferry.jobs.{site_id}")
}

/// The subject an agent of `site_id` reports a job's progress on. The site in the
/// subject is what nats-server's permissions vouch for: the control plane applies a
/// report only if that site runs the job.
pub fn progress_subject(site_id: &str, job_id: &str) -> String {
    format!("ferry.progress.{site_id}.{job_id}")
}

/// The reporting site and the job of a progress subject; `None` for anything else,
/// including the older `ferry.progress.<job id>`, which names no site.
pub fn parse_progress_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("ferry.progress.")?;
    let (site, job) = rest.split_once('.')?;
    let token = |t: &str| !t.is_empty() && !t.contains(['.', '*', '>']);
    (token(site) && token(job)).then_some((site, job))
}

/// Where the agents of a site answer dry runs (NATS request and reply, no JetStream),
/// in the queue group [`DRY_RUN_QUEUE`].
pub fn dry_run_subject(site_id: &str) -> String {
    format!("ferry.dryrun.{site_id}")
}

pub const DRY_RUN_QUEUE: &str = "agents";

/// The durable pull consumer of [`JOBS_STREAM`] that a site's agents share.
pub fn site_consumer(site_id: &str) -> String {
    format!("agents-{site_id}")
}

/// The inbox prefix of an agent of `site_id`. Replies to its requests (JetStream's
/// answers, and the tasks its pull requests fetch) arrive under it, so its NATS user
/// subscribes to its own inboxes only, not to `_INBOX.>` where it could read another
/// site's tasks.
pub fn agent_inbox_prefix(site_id: &str) -> String {
    format!("_INBOX_{site_id}")
}

/// What nats-server lets one user do: the subjects it may publish and subscribe to, and
/// whether it may answer requests sent to it (the dry runs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub allow_responses: bool,
}

/// The least an agent of `site_id` needs: take its own site's tasks (bind or create its
/// site's consumer, pull, acknowledge), publish reports under its own site, answer its
/// site's dry runs, and receive replies in its own inboxes. Nothing of another site.
pub fn agent_permissions(site_id: &str) -> Permissions {
    let consumer = site_consumer(site_id);
    Permissions {
        publish: vec![
            format!("ferry.progress.{site_id}.*"),
            format!("$JS.API.CONSUMER.INFO.{JOBS_STREAM}.{consumer}"),
            // The create subject names the filter: nats-server refuses a config whose
            // filter differs, so this user cannot point its consumer at another site.
            format!(
                "$JS.API.CONSUMER.CREATE.{JOBS_STREAM}.{consumer}.{}",
                jobs_subject(site_id)
            ),
            format!("$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer}"),
            format!("$JS.ACK.{JOBS_STREAM}.{consumer}.>"),
        ],
        subscribe: vec![
            format!("{}.>", agent_inbox_prefix(site_id)),
            dry_run_subject(site_id),
        ],
        allow_responses: true,
    }
}

/// One entry of nats-server's `authorization { users = [...] }`, in its configuration
/// syntax: `password` as given (plain, or a bcrypt hash, which nats-server recognises
/// by its `$2a$` prefix), and no `permissions` block for a user that may do anything.
pub fn nats_user_entry(user: &str, password: &str, permissions: Option<&Permissions>) -> String {
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut entry = format!("{{\n  user: {user:?}\n  password: {password:?}\n");
    if let Some(p) = permissions {
        entry.push_str(&format!(
            "  permissions: {{\n    publish: {{ allow: [{}] }}\n    subscribe: {{ allow: [{}] }}\n",
            list(&p.publish),
            list(&p.subscribe)
        ));
        if p.allow_responses {
            entry.push_str("    allow_responses: true\n");
        }
        entry.push_str("  }\n");
    }
    entry.push('}');
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_subjects_name_the_site_and_the_job() {
        let subject = progress_subject("s1", "j1");
        assert_eq!(parse_progress_subject(&subject), Some(("s1", "j1")));
        assert_eq!(parse_progress_subject("ferry.progress.j1"), None);
        assert_eq!(parse_progress_subject("ferry.progress.s1.j1.x"), None);
        assert_eq!(parse_progress_subject("ferry.progress..j1"), None);
        assert_eq!(parse_progress_subject("ferry.jobs.s1.j1"), None);
    }

    #[test]
    fn an_agent_may_report_only_under_its_own_site() {
        let p = agent_permissions("s1");
        assert!(p.publish.contains(&"ferry.progress.s1.*".to_owned()));
        assert!(p.publish.iter().all(|s| !s.contains("s2")));
        assert!(p.subscribe.iter().all(|s| s.contains("s1")), "{p:?}");
    }

    #[test]
    fn user_entries_quote_every_string() {
        let entry = nats_user_entry("agent", "$2a$10$x\"y", Some(&agent_permissions("s1")));
        assert!(entry.contains(r#"password: "$2a$10$x\"y""#), "{entry}");
        assert!(entry.contains(r#""ferry.dryrun.s1""#), "{entry}");
        assert!(entry.contains("allow_responses: true"), "{entry}");
        assert!(!nats_user_entry("cp", "p", None).contains("permissions"));
    }
}
