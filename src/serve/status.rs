//! The machine-readable pages: `/opml` (every feed, for a reader's import),
//! `/status.json` (per-site state, written straight into one buffer so 10,000 sites answer
//! in tens of milliseconds), `/healthz` and `/metrics`.

use super::*;

/// `/opml?format=`: which format the outlines point at.
#[derive(serde::Deserialize)]
pub(super) struct OpmlQuery {
    format: Option<String>,
}

/// Every feed as an OPML outline, in the format asked for (`atom`, `rss`, `json`; Atom
/// when none is named).
pub(super) async fn opml(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<OpmlQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let asked = query.ok().and_then(|q| q.0.format);
    let format = match asked.as_deref() {
        None | Some("") => Format::Atom,
        Some(name) => match Format::from_ext(name) {
            Some(f) => f,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    format!(
                        "unknown format {:?}: use atom, rss or json\n",
                        printable_name(name)
                    ),
                )
                    .into_response()
            }
        },
    };
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let mut outlines = String::new();
    for site in set.all_sites() {
        let html_url = site
            .home
            .as_ref()
            .map(|h| format!(r#" htmlUrl="{}""#, esc(h.as_str())))
            .unwrap_or_default();
        let _ = writeln!(
            outlines,
            r#"    <outline type="rss" text="{0}" title="{0}" xmlUrl="{1}/feeds/{2}.{4}"{3}/>"#,
            esc(&site.title),
            esc(&base),
            site.id,
            html_url,
            format.ext()
        );
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head><title>feedbridge feeds</title></head>\n  <body>\n{outlines}  </body>\n</opml>\n"
    );
    ([(header::CONTENT_TYPE, "text/x-opml; charset=utf-8")], body).into_response()
}

/// `/status.json?site=`: one site instead of all.
#[derive(serde::Deserialize)]
pub(super) struct StatusQuery {
    site: Option<String>,
}

/// Every site's state, or one site's (`?site=ID`, a 404 JSON error for an unknown id).
/// Written straight into one buffer, the last run copied as the JSON it is stored as:
/// with 10,000 sites this page must not decode and re-encode 10,000 records.
pub(super) async fn status_json(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let json = |status: StatusCode, body: Vec<u8>| {
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    if let Some(id) = query.ok().and_then(|q| q.0.site) {
        let Some(site) = set.sites.get(&id) else {
            let error =
                serde_json::json!({ "error": format!("no such site: {}", printable_name(&id)) });
            return Ok(json(StatusCode::NOT_FOUND, error.to_string().into_bytes()));
        };
        let mut out = Vec::with_capacity(2048);
        site_status(&state, site, &base, &mut out)?;
        return Ok(json(StatusCode::OK, out));
    }
    let mut out = Vec::with_capacity(set.sites.len() * 1024 + 64);
    // A sharded node reports its own sites, and says which shard it is.
    out.extend_from_slice(b"{\"shard\":");
    write_json(&mut out, &set.shard.map(|s| s.to_string()));
    out.extend_from_slice(b",\"sites\":[");
    for (i, site) in set.sites.values().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        site_status(&state, site, &base, &mut out)?;
    }
    // One `path:line:col: message` per problem (a file may have several).
    let errors: Vec<String> = set.errors.iter().flat_map(|e| e.lines()).collect();
    out.extend_from_slice(b"],\"errors\":");
    write_json(&mut out, &errors);
    out.push(b'}');
    Ok(json(StatusCode::OK, out))
}

/// One site's object of `/status.json`.
pub(super) fn site_status(
    state: &AppState,
    site: &Site,
    base: &str,
    out: &mut Vec<u8>,
) -> Result<(), AppError> {
    json_key(out, "id", true);
    write_json(out, &site.id);
    json_key(out, "title", false);
    write_json(out, &site.title);
    json_key(out, "feed", false);
    write_json(out, &format!("{base}/feeds/{}.atom", site.id));
    json_key(out, "file", false);
    write_json(out, &site.path.display().to_string());
    json_key(out, "schedule", false);
    write_json(out, site.schedule.as_str());
    json_key(out, "items", false);
    write_json(out, &state.store.count(&site.id));
    json_key(out, "hub", false);
    write_json(
        out,
        &site.hub.as_ref().or(state.hub.as_ref()).map(Url::as_str),
    );
    json_key(out, "hub_warning", false);
    write_json(out, &state.hub_warnings.get(&site.id));
    json_key(out, "last_run", false);
    match state.store.run_status_json(&site.id)? {
        // Our own record; checked anyway (no allocation) so that a damaged one cannot
        // break the whole document.
        Some(raw) if serde_json::from_slice::<serde::de::IgnoredAny>(&raw).is_ok() => {
            out.extend_from_slice(&raw)
        }
        _ => out.extend_from_slice(b"null"),
    }
    json_key(out, "image_errors", false);
    write_json(out, &state.images.as_ref().and_then(|p| p.errors(&site.id)));
    out.push(b'}');
    Ok(())
}

/// `{"name":` for the first key, `,"name":` after.
pub(super) fn json_key(out: &mut Vec<u8>, name: &str, first: bool) {
    out.extend_from_slice(if first { b"{\"" } else { b",\"" });
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

pub(super) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = state.store.is_healthy();
    let scheduler_ok = state
        .heartbeat
        .as_ref()
        .is_none_or(|h| Utc::now().timestamp() - h.load(Ordering::Relaxed) < 60);
    let troubled = state.internal_errors.sites();
    if store_ok && scheduler_ok && !troubled.is_empty() {
        // Degraded, not dead: a restart would not fix a bug, and the other sites run.
        let why = format!(
            "degraded: {} sites in internal-error ({})\n",
            troubled.len(),
            troubled.join(", ")
        );
        (StatusCode::OK, why).into_response()
    } else if store_ok && scheduler_ok {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let why = format!("store ok: {store_ok}, scheduler alive: {scheduler_ok}\n");
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    state.metrics.render(&mut out);
    let set = state.sites.borrow().clone();
    let _ = writeln!(out, "# TYPE feedbridge_site_items gauge");
    for id in set.sites.keys() {
        let _ = writeln!(
            out,
            "feedbridge_site_items{{site=\"{id}\"}} {}",
            state.store.count(id)
        );
    }
    let _ = writeln!(out, "# TYPE feedbridge_site_consecutive_failures gauge");
    for id in set.sites.keys() {
        let n = state
            .store
            .run_brief(id)
            .ok()
            .flatten()
            .map_or(0, |s| s.consecutive_failures);
        let _ = writeln!(
            out,
            "feedbridge_site_consecutive_failures{{site=\"{id}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# TYPE feedbridge_selector_files_failed gauge\nfeedbridge_selector_files_failed {}",
        set.errors.len()
    );
    let _ = writeln!(
        out,
        "# TYPE feedbridge_render_cache_bytes gauge\nfeedbridge_render_cache_bytes {}\n# TYPE feedbridge_render_cache_slots gauge\nfeedbridge_render_cache_slots {}",
        state.cache.used(),
        state.cache.slots()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
