//! `feedbridge check`: every broken selector file in `fixtures/invalid/` gives exactly the
//! lines its `# expect:` header pins (one per problem, all of them), folders are checked
//! like `serve` reads them, and the bundled files pass. Also the store's errors for a
//! `--data` that cannot be a store.

use crate::support::{root, run, text, TempDir};
use feedbridge::site;

/// The `# expect: L:C: message` lines heading a fixture.
fn expected(f: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map_while(|l| l.strip_prefix("# expect: "))
        .map(|e| format!("{}:{e}", f.display()))
        .collect()
}

fn problem_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter(|l| l.contains(".toml:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_broken_selector_file_gives_all_its_messages() {
    let dir = root().join("fixtures/invalid");
    let files = site::selector_files(&dir).unwrap();
    assert!(files.len() >= 25, "only {} broken files", files.len());
    let mut all = Vec::new();
    for f in &files {
        let want = expected(f);
        assert!(!want.is_empty(), "{} has no # expect: line", f.display());
        let out = run(&["check", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", f.display());
        assert_eq!(problem_lines(&out.stderr), want, "{}", f.display());
        all.extend(want);
    }
    assert_eq!(
        expected(&dir.join("several-errors.toml")).len(),
        4,
        "one check reports all four mistakes"
    );
    // The folder at once: the same lines, in file order, exit 2.
    let out = run(&["check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(problem_lines(&out.stderr), all);
    assert!(text(&out.stderr).contains(&format!(
        "{} of {} selector files have errors ({} problems)",
        files.len(),
        files.len(),
        all.len()
    )));
}

#[test]
fn messages_are_single_lines_and_quote_at_most_200_characters() {
    let tmp = TempDir::new("check-huge");
    let huge = format!("(a{})", "|b".repeat(750_000));
    let file = tmp.join("huge-regex.toml");
    std::fs::write(
        &file,
        format!(
            "title = \"t\"\ntimezone = \"UTC\"\nstart = [\"http://a.example/\"]\n[list]\n\
             item = \"li\"\nlink = {{ css = \"a\", regex = '{huge}' }}\n"
        ),
    )
    .unwrap();
    let out = run(&["check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let lines = problem_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains(":6:29: `list.link.regex` is 1500003 characters long"),
        "{line}"
    );
    assert!(line.contains("|b…\")"), "{line}");
    assert!(
        line.chars().count() < 400,
        "{} characters",
        line.chars().count()
    );
}

#[test]
fn a_seconds_schedule_passes_with_min_interval() {
    let tmp = TempDir::new("check-min-interval");
    let base = "title = \"t\"\ntimezone = \"UTC\"\nstart = [\"http://a.example/\"]\n\
                schedule = \"*/2 * * * * *\"\n";
    let list = "[list]\nitem = \"li\"\nlink = \"a\"\n";
    std::fs::write(tmp.join("fast.toml"), format!("{base}{list}")).unwrap();
    let out = run(&["check", tmp.join("fast.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("fires 2s apart"));
    std::fs::write(
        tmp.join("fast.toml"),
        format!("{base}min_interval = \"1s\"\n{list}"),
    )
    .unwrap();
    let out = run(&["check", tmp.join("fast.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn bundled_selector_files_check_clean() {
    let out = run(&[
        "check",
        "--selectors",
        root().join("selectors").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok "));
    // A folder given as an argument reads the same files.
    let out = run(&["check", root().join("selectors").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("ok ").count(), 3);
}

#[test]
fn a_data_path_that_is_a_file_says_so_in_one_sentence() {
    let tmp = TempDir::new("check-data-file");
    std::fs::create_dir_all(tmp.join("selectors")).unwrap();
    let file = tmp.join("data");
    std::fs::write(&file, "not a store").unwrap();
    let out = run(&[
        "crawl",
        "--selectors",
        tmp.join("selectors").to_str().unwrap(),
        "--data",
        file.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("`{}` is not a directory", file.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("File exists").count(), 0, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
