//! The commands that read pages without touching the store: `preview` (a selector
//! file on its pages), `extract` (one article, automatically) and `suggest` (a selector
//! file from a list page).

use super::*;

pub(super) async fn preview_cmd(
    settings: &Settings,
    path: &Path,
    url: Option<Url>,
    saved: Option<(PathBuf, Url)>,
    kind: Option<&str>,
    json: bool,
    limit: usize,
) -> Result<()> {
    let site = load_site(path)?;
    let fetcher = Fetcher::new(settings.fetch.clone())?;
    let manners = Manners {
        delay: site.delay.unwrap_or(settings.default_delay),
        robots: site.robots,
        policy: crate::url_policy::UrlPolicy::resolved(
            site.start_urls().into_iter().chain(url.clone()),
        )
        .await,
    };
    let now = Utc::now();
    let mut items: Vec<Item> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    if let Some((file, base)) = saved {
        let body =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let page = Page {
            url: base,
            body: body.into(),
            content_type: None,
        };
        items = preview_saved(&site, &page, kind, now, &mut notes);
    } else {
        // Every start page, as a crawl reads them, unless --url names one.
        let starts = url.map_or_else(|| site.start_urls(), |u| vec![u]);
        let entries = preview_list(&site, &fetcher, &manners, starts, &mut notes).await?;
        for entry in entries.iter().take(limit) {
            let Some(url) = &entry.url else { continue };
            // An upstream entry without a link has a stand-in URL: no page to fetch.
            let no_link = entry.upstream.as_ref().is_some_and(|u| u.no_link);
            let item = match crate::extract::article_rules(&site).filter(|_| !no_link) {
                Some(rules) => match fetcher.get(url, None, &manners).await {
                    Ok(FetchOutcome::Page { page, .. }) => {
                        extract_article(&page, &site, rules, entry, now)
                    }
                    Ok(FetchOutcome::NotModified) => continue,
                    Err(e) => {
                        let mut item = item_from_entry(entry, &site);
                        item.warnings.push(format!("article not fetched: {e}"));
                        item
                    }
                },
                None => item_from_entry(entry, &site),
            };
            items.push(item);
        }
        if entries.len() > limit {
            notes.push(format!(
                "{} more items on the list (raise --limit to see them)",
                entries.len() - limit
            ));
        }
    }
    if json {
        for item in &items {
            println!("{}", preview_json(item));
        }
    } else {
        print_table(&site, &items);
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// The list entries `preview` shows, read exactly as a crawl reads them (no validators).
pub(super) async fn preview_list(
    site: &Site,
    fetcher: &Fetcher,
    manners: &Manners,
    starts: Vec<Url>,
    notes: &mut Vec<String>,
) -> Result<Vec<ListEntry>> {
    let lists =
        schedule::read_lists(site, fetcher, manners, starts, |_| None, &schedule::Quiet).await;
    notes.extend(lists.warnings);
    notes.extend(lists.matched_nothing);
    match lists.error {
        Some((_, message)) if lists.entries.is_empty() => bail!(message),
        Some((_, message)) => notes.push(message),
        None => {}
    }
    Ok(lists.entries)
}

pub(super) fn preview_saved(
    site: &Site,
    page: &Page,
    kind: Option<&str>,
    now: chrono::DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Vec<Item> {
    let as_article = match kind {
        Some(k) => k == "article",
        None => crate::extract::article_rules(site).is_some_and(|a| {
            let doc = crate::extract::Document::parse(page, site);
            let root = doc.html.root_element();
            [&a.body, &a.title]
                .into_iter()
                .flatten()
                .any(|f| f.matches(root).next().is_some())
        }),
    };
    match (as_article, crate::extract::article_rules(site)) {
        (true, Some(rules)) => {
            let entry = ListEntry {
                url: Some(crate::model::canonical_url(&page.url)),
                ..ListEntry::default()
            };
            vec![extract_article(page, site, rules, &entry, now)]
        }
        _ => match crate::extract::listing(page, site, now) {
            Ok(listing) => {
                notes.extend(listing.warnings);
                if let Some(next) = listing.next {
                    notes.push(format!("next page: {next}"));
                }
                listing
                    .entries
                    .iter()
                    .map(|e| item_from_entry(e, site))
                    .collect()
            }
            Err(e) => {
                notes.push(e.to_string());
                Vec::new()
            }
        },
    }
}

/// The preview contract: url, title, published, source, images, content, warnings.
pub fn preview_json(item: &Item) -> String {
    serde_json::json!({
        "url": item.url,
        "title": item.title,
        "published": item.published.map(|p| p.to_rfc3339()),
        "source": item.source,
        "images": item.images,
        "content": item.content,
        "via": item.via,
        "warnings": item.warnings,
    })
    .to_string()
}

pub(super) fn print_table(site: &Site, items: &[Item]) {
    print_table_to(&mut std::io::stdout().lock(), site, items);
}

/// Prints the preview table to `out` (`suggest` sends it to stderr when stdout is the file).
pub(super) fn print_table_to(out: &mut dyn std::io::Write, site: &Site, items: &[Item]) {
    macro_rules! println {
        ($($t:tt)*) => { let _ = writeln!(out, $($t)*); };
    }
    println!("{} ({}): {} items", site.title, site.id, items.len());
    for (i, item) in items.iter().enumerate() {
        let body = item
            .content
            .as_deref()
            .map(|c| {
                let fragment = scraper::Html::parse_fragment(c);
                crate::extract::normalize_text(fragment.root_element().text())
            })
            .unwrap_or_default();
        println!();
        println!(
            "#{:<3} {}",
            i + 1,
            item.title.as_deref().unwrap_or("(no title)")
        );
        println!(
            "     date    {}",
            item.published.map_or("(none)".into(), |p| p.to_rfc3339())
        );
        println!(
            "     source  {}",
            item.source.as_deref().unwrap_or("(none)")
        );
        println!("     body    {}", excerpt(&body, 100));
        println!("     images  {}", item.images.len());
        for img in &item.images {
            println!("             {img}");
        }
        println!("     url     {}", item.url);
        for w in &item.warnings {
            println!("     warning {w}");
        }
    }
}

pub(super) async fn extract_cmd(
    settings: &Settings,
    source: &str,
    url: Option<Url>,
    timezone: Option<chrono_tz::Tz>,
    encoding: Option<&str>,
    site_file: Option<&Path>,
    json: bool,
) -> Result<()> {
    let encoding = match encoding {
        Some(l) => Some(
            encoding_rs::Encoding::for_label(l.trim().as_bytes()).ok_or_else(|| {
                config_failure(format!("--encoding {l:?} is not a known encoding label"))
            })?,
        ),
        None => None,
    };
    let site = site_file.map(load_site).transpose()?;
    let page = if source.starts_with("http://") || source.starts_with("https://") {
        let address = Url::parse(source).map_err(|e| config_failure(format!("{source}: {e}")))?;
        let manners = Manners {
            delay: Duration::ZERO,
            robots: site.as_ref().is_none_or(|s| s.robots),
            // The operator typed this URL: it may be on their own network.
            policy: crate::url_policy::UrlPolicy::resolved([address.clone()]).await,
        };
        match Fetcher::new(settings.fetch.clone())?
            .get(&address, None, &manners)
            .await?
        {
            FetchOutcome::Page { page, .. } => page,
            FetchOutcome::NotModified => bail!("{source}: 304 Not Modified"),
        }
    } else {
        let body = if source == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .context("cannot read stdin")?;
            b
        } else {
            std::fs::read(source).with_context(|| format!("cannot read {source}"))?
        };
        let url = match url {
            Some(u) => u,
            None if source == "-" => Url::parse("http://localhost/")?,
            None => Url::from_file_path(std::fs::canonicalize(source)?)
                .map_err(|_| anyhow::anyhow!("{source}: not a file path"))?,
        };
        Page {
            url,
            body: body.into(),
            content_type: None,
        }
    };
    let options = crate::extract::auto::ExtractOptions {
        timezone,
        encoding,
        site: site.as_ref(),
        now: Utc::now(),
    };
    let report = crate::extract::auto::run(&page, options);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// `suggest`: the file on stdout (or written with --write), then the preview table.
pub(super) async fn suggest_cmd(
    settings: &Settings,
    opts: &crate::suggest::Options,
    write: Option<&Path>,
    force: bool,
) -> Result<()> {
    let fetcher = Fetcher::new(settings.fetch.clone())?;
    let failure = |e: crate::suggest::SuggestError| match e.is_usage() {
        true => config_failure(e.to_string()),
        false => anyhow::Error::from(e),
    };
    let s = crate::suggest::run(opts, &fetcher).await.map_err(failure)?;
    match write {
        Some(dir) => {
            let path = crate::suggest::write(dir, &s, force).map_err(failure)?;
            println!("wrote {}", path.display());
            print_table(&s.site, &s.items);
        }
        None => {
            print!("{}", s.toml);
            print_table_to(&mut std::io::stderr().lock(), &s.site, &s.items);
        }
    }
    for u in &s.unsure {
        eprintln!("unsure: {u}");
    }
    Ok(())
}

/// The first `n` characters of `text`, and how many there are in all when it is longer.
pub(super) fn excerpt(text: &str, n: usize) -> String {
    let total = text.chars().count();
    match total {
        0 => "(none)".into(),
        t if t <= n => text.to_owned(),
        t => format!(
            "{}… ({t} characters)",
            text.chars().take(n).collect::<String>()
        ),
    }
}
