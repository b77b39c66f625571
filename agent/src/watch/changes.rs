//! What a watcher makes of its events: the keys they name, when each settles, and which
//! of them are worth a run under the sync's filter.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use ferry_proto::v1 as pb;
use ferry_storage::{fs_write, ObjectFilter};
use notify::{
    event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind},
    Event, EventKind,
};
use tokio::time::Instant;
use tracing::warn;

use crate::wire::filter_spec;

/// A key is reported once no event touched it for this long.
pub(super) const SETTLE: Duration = Duration::from_secs(1);
/// ... or this long after its first event, however busy it stays.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(10);

/// The sync's filter compiled, or `None` to report every change: with no filter, or
/// one that does not compile (the control plane checks it when the schedule is made).
pub(super) fn key_filter(filter: Option<&pb::ObjectFilter>) -> Option<Arc<ObjectFilter>> {
    let filter = filter?;
    match ObjectFilter::new(&filter_spec(Some(filter))) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            warn!(error = %e, "the sync's filter does not compile; reporting every change");
            None
        }
    }
}

/// The keys an event names below `dir`, or `None` when it calls for a rescan. Reads
/// that change nothing name none.
pub(super) fn keys_of(dir: &Path, event: &Event) -> Option<Vec<String>> {
    if event.need_rescan() {
        return None;
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return Some(Vec::new()),
        _ => {}
    }
    let mut keys = Vec::with_capacity(event.paths.len());
    for path in &event.paths {
        let Ok(relative) = path.strip_prefix(dir) else {
            continue;
        };
        let key = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if key.is_empty() {
            // The watched directory itself (removed, moved): only a listing can tell.
            return None;
        }
        if fs_write::is_partial(&key) {
            // A write in progress: its rename into place names the file.
            continue;
        }
        keys.push(key);
    }
    Some(keys)
}

/// What an event of `kind` tells of its paths: `Some(true)` a file, `Some(false)` a
/// directory, `None` nothing (a rename, or a platform that does not say).
pub(super) fn names_a_file(kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::Create(CreateKind::File)
        | EventKind::Remove(RemoveKind::File)
        | EventKind::Modify(ModifyKind::Data(_))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(true),
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => {
            Some(false)
        }
        _ => None,
    }
}

/// A key touched by events.
#[derive(Debug)]
struct Touched {
    first: Instant,
    last: Instant,
    /// What the latest event that told said the path was: a file (`Some(true)`) or a
    /// directory.
    file: Option<bool>,
}

/// A settled key, and what its events said it was (see [`Touched::file`]).
pub(super) type Settled = (String, Option<bool>);

/// Keys touched by events, until they settle.
#[derive(Debug, Default)]
pub(super) struct Settling {
    keys: HashMap<String, Touched>,
}

impl Settling {
    pub(super) fn touch(&mut self, key: String, file: Option<bool>, now: Instant) {
        self.keys
            .entry(key)
            .and_modify(|t| {
                t.last = now;
                t.file = file.or(t.file);
            })
            .or_insert(Touched {
                first: now,
                last: now,
                file,
            });
    }

    /// Takes the keys settled at `now`, in key order.
    pub(super) fn take_settled(&mut self, now: Instant) -> Vec<Settled> {
        let keys: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, t)| now - t.last >= SETTLE || now - t.first >= MAX_WAIT)
            .map(|(k, _)| k.clone())
            .collect();
        let mut settled: Vec<Settled> = keys
            .into_iter()
            .filter_map(|k| self.keys.remove_entry(&k).map(|(k, t)| (k, t.file)))
            .collect();
        settled.sort();
        settled
    }

    /// Takes every key, settled or not.
    pub(super) fn take_all(&mut self) -> Vec<Settled> {
        let mut all: Vec<Settled> = self.keys.drain().map(|(k, t)| (k, t.file)).collect();
        all.sort();
        all
    }
}

/// The settled keys worth a run: with a filter, those it may take by key, and any
/// other that is, or may be, a directory (what it holds may be taken). Files the
/// filter does not take are left out. Stats on the blocking pool; `None` if that
/// failed, and the keys with it.
pub(super) async fn worth_reporting(
    dir: &Path,
    filter: Option<&Arc<ObjectFilter>>,
    settled: Vec<Settled>,
) -> Option<Vec<String>> {
    let filter = match filter {
        Some(filter) if !settled.is_empty() => filter,
        _ => return Some(settled.into_iter().map(|(k, _)| k).collect()),
    };
    let (dir, filter) = (dir.to_owned(), filter.clone());
    let judge = move || {
        settled
            .into_iter()
            .filter(|(key, file)| taken(&dir, &filter, key, *file))
            .map(|(key, _)| key)
            .collect::<Vec<_>>()
    };
    tokio::task::spawn_blocking(judge)
        .await
        .inspect_err(
            |e| warn!(error = %e, "judging changed keys failed; the next run lists everything"),
        )
        .ok()
}

/// Whether `key` below `dir` may hold what `filter` takes: it names an object the
/// filter may take, or a directory. A path that is gone counts as what its events
/// said it was, and as a directory when they did not say.
fn taken(dir: &Path, filter: &ObjectFilter, key: &str, file: Option<bool>) -> bool {
    if filter.may_take_key(key) {
        return true;
    }
    match std::fs::metadata(dir.join(key)) {
        Ok(metadata) => metadata.is_dir(),
        Err(_) => file != Some(true),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        e.paths = paths.iter().map(PathBuf::from).collect();
        e
    }

    #[test]
    fn events_name_keys_relative_to_the_watched_directory() {
        let dir = Path::new("/data/genome");
        let created = event(
            EventKind::Create(CreateKind::File),
            &["/data/genome/runs/a.bam", "/elsewhere/x"],
        );
        assert_eq!(keys_of(dir, &created), Some(vec!["runs/a.bam".to_owned()]));
        let written = event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &["/data/genome/b"],
        );
        assert_eq!(keys_of(dir, &written), Some(vec!["b".to_owned()]));
        let read = event(
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            &["/data/genome/b"],
        );
        assert_eq!(keys_of(dir, &read), Some(vec![]));
        let renamed_into_place = event(
            EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::Both)),
            &[
                "/data/genome/runs/.c.bam.00000000000000ff.ferry-partial",
                "/data/genome/runs/c.bam",
            ],
        );
        assert_eq!(
            keys_of(dir, &renamed_into_place),
            Some(vec!["runs/c.bam".to_owned()]),
            "a write's temporary file is no key"
        );
        let removed = event(EventKind::Remove(RemoveKind::Any), &["/data/genome"]);
        assert_eq!(keys_of(dir, &removed), None, "the directory itself went");
        let lost =
            event(EventKind::Modify(ModifyKind::Any), &[]).set_flag(notify::event::Flag::Rescan);
        assert_eq!(keys_of(dir, &lost), None);
    }

    #[test]
    fn keys_settle_after_a_quiet_second_or_ten_busy_ones() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut settling = Settling::default();
        settling.touch("quiet".into(), Some(true), at(0));
        settling.touch("busy".into(), None, at(0));
        assert!(settling.take_settled(at(900)).is_empty());
        // "busy" is written every half second from then on.
        for t in (500..=9_500).step_by(500) {
            settling.touch("busy".into(), None, at(t));
            let settled = settling.take_settled(at(t));
            if t >= 1_000 {
                assert!(settled.iter().all(|(k, _)| k != "busy"), "{t} ms");
            }
            if t == 1_000 {
                assert_eq!(settled, [("quiet".to_owned(), Some(true))]);
            }
        }
        // A later event that does not say what the path is keeps what an earlier said.
        settling.touch("busy".into(), Some(false), at(9_800));
        settling.touch("busy".into(), None, at(10_000));
        assert_eq!(
            settling.take_settled(at(10_000)),
            [("busy".to_owned(), Some(false))]
        );
        settling.touch("late".into(), None, at(10_100));
        assert_eq!(settling.take_all(), [("late".to_owned(), None)]);
    }

    #[test]
    fn events_tell_files_from_directories_where_they_can() {
        use notify::event::{DataChange, RenameMode};
        for (kind, said) in [
            (EventKind::Create(CreateKind::File), Some(true)),
            (EventKind::Remove(RemoveKind::File), Some(true)),
            (
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                Some(true),
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                Some(true),
            ),
            (EventKind::Create(CreateKind::Folder), Some(false)),
            (EventKind::Remove(RemoveKind::Folder), Some(false)),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), None),
            (EventKind::Any, None),
        ] {
            assert_eq!(names_a_file(&kind), said, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn files_the_filter_does_not_take_are_left_out_and_directories_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("runs/2026.tmp")).unwrap_or_else(|e| panic!("{e}"));
        for file in ["runs/a.csv", "runs/a.csv.swp", "other/b.csv"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(root))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(path, b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        let filter = key_filter(Some(&pb::ObjectFilter {
            prefix: "runs/".into(),
            include: vec!["**/*.csv".into()],
            ..Default::default()
        }));
        let settled = |keys: &[(&str, Option<bool>)]| -> Vec<Settled> {
            keys.iter().map(|(k, f)| ((*k).to_owned(), *f)).collect()
        };
        let reported = worth_reporting(
            root,
            filter.as_ref(),
            settled(&[
                // Taken by the filter, whatever the events said.
                ("runs/a.csv", None),
                ("runs/gone.csv", Some(true)),
                // Files it does not take: by their stat, or by their events when gone.
                ("runs/a.csv.swp", None),
                ("other/b.csv", Some(true)),
                ("runs/gone.tmp", Some(true)),
                // A directory, or a path gone without its events saying it was a file,
                // may hold what the filter takes.
                ("runs/2026.tmp", Some(true)),
                ("runs/moved", None),
                ("runs/dir-gone", Some(false)),
            ]),
        )
        .await;
        assert_eq!(
            reported,
            Some(
                [
                    "runs/a.csv",
                    "runs/gone.csv",
                    "runs/2026.tmp",
                    "runs/moved",
                    "runs/dir-gone"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        // Without a filter, every key.
        let all = worth_reporting(root, None, settled(&[("x.swp", Some(true))])).await;
        assert_eq!(all, Some(vec!["x.swp".to_owned()]));
        // A filter that does not compile reports every change too.
        assert!(key_filter(Some(&pb::ObjectFilter {
            include: vec!["a{".into()],
            ..Default::default()
        }))
        .is_none());
        assert!(key_filter(None).is_none());
    }
}
