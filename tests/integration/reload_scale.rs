//! Issue 11: with many selector files, one edited file is noticed and applied alone, by
//! change notification and by the polling fallback (which must see an in-place edit,
//! although that leaves the directory's own modification time alone).

use std::time::Duration;

use crate::support::{eventually, spawn_serve_env, status_json, TempDir};

const FILES: usize = 300;

fn selector(origin: &str, title: &str) -> String {
    format!(
        "title = \"{title}\"\nstart = [\"{origin}/list.html\"]\nschedule = \"*/30 * * * *\"\n\
         timezone = \"Asia/Shanghai\"\ndelay = \"0s\"\nrobots = false\n\n\
         [list]\nitem = \"div.list li\"\nlink = \"a\"\n"
    )
}

async fn title_of(base: &str, id: &str) -> Option<String> {
    let status = status_json(base).await?;
    status["sites"].as_array()?.iter().find(|s| s["id"] == id)?["title"]
        .as_str()
        .map(str::to_owned)
}

/// `FILES` sites on an empty list page; once all are served, one file is rewritten in
/// place (same inode, same directory mtime) and its new title must show.
async fn one_edit_among_many(label: &str, env: &[(&str, &str)]) {
    let tmp = TempDir::new(label);
    let site = tmp.join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(
        site.join("list.html"),
        "<html><body><div class=\"list\"><ul></ul></div></body></html>",
    )
    .expect("write list");
    let fixture = feedbridge::fixture_server::FixtureServer::start(&site, 0)
        .await
        .expect("fixture");
    let origin = fixture.origin();
    std::fs::create_dir_all(tmp.join("selectors")).expect("mkdir");
    for i in 0..FILES {
        std::fs::write(
            tmp.join(&format!("selectors/s{i}.toml")),
            selector(&origin, &format!("site {i}")),
        )
        .expect("write selector");
    }
    let (base, _p) = spawn_serve_env(tmp.path(), env);
    eventually(Duration::from_secs(60), || async {
        (status_json(&base).await?["sites"].as_array()?.len() == FILES).then_some(())
    })
    .await
    .expect("every site served");
    assert_eq!(title_of(&base, "s150").await.as_deref(), Some("site 150"));

    // In place: the same file truncated and rewritten, as `echo > file` does.
    let edited = tmp.join("selectors/s150.toml");
    std::fs::write(&edited, selector(&origin, "site 150 edited")).expect("edit");
    eventually(Duration::from_secs(45), || async {
        (title_of(&base, "s150").await? == "site 150 edited").then_some(())
    })
    .await
    .expect("the in-place edit was not applied");
    assert_eq!(
        title_of(&base, "s149").await.as_deref(),
        Some("site 149"),
        "the other sites are untouched"
    );

    // A broken edit keeps the last good rules and says where the problem is.
    std::fs::write(&edited, "title = \n").expect("break");
    let error = eventually(Duration::from_secs(45), || async {
        let status = status_json(&base).await?;
        let error = status["errors"].as_array()?.first()?.as_str()?.to_owned();
        Some(error)
    })
    .await
    .expect("the broken file was not reported");
    assert!(error.contains("selectors/s150.toml:"), "{error}");
    assert_eq!(
        title_of(&base, "s150").await.as_deref(),
        Some("site 150 edited"),
        "last good rules kept"
    );

    // A deleted file removes its site.
    std::fs::remove_file(&edited).expect("delete");
    eventually(Duration::from_secs(45), || async {
        (status_json(&base).await?["sites"].as_array()?.len() == FILES - 1).then_some(())
    })
    .await
    .expect("the deleted file's site was not removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_edit_among_many_files_applies_by_notification() {
    one_edit_among_many("reload-notify", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_in_place_edit_among_many_files_applies_when_polling() {
    one_edit_among_many("reload-poll", &[("FEEDBRIDGE_WATCH", "poll")]).await;
}
