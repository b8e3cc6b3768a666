//! Prints what the extractor makes of a saved page, to judge it on real HTML:
//! `cargo run -p aurora-actors --example extract_file -- page.html https://where.it/came/from`
//! (add `facts` for the facts-only pass a crawl uses for pages it only needs links from).

use aurora_actors::scraper::extract::{Options, Selectors, extract, facts};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(url)) = (args.next(), args.next()) else {
        return Err("usage: extract_file PAGE.html URL".into());
    };
    let bytes = std::fs::read(path)?;
    let (html, _) = aurora_actors::scraper::charset::decode(&bytes, None, false);
    let selectors = Selectors::default();
    let url = url.parse()?;
    let page = match args.next().as_deref() {
        Some("facts") => facts(&html, &url),
        _ => extract(
            &html,
            &url,
            &Options {
                only_main_content: true,
                selectors: &selectors,
                remove_base64_images: true,
                want_html: false,
            },
        ),
    };
    eprintln!(
        "title: {:?}\ndescription: {:?}\nlanguage: {:?}\ncanonical: {:?}\nlinks: {}",
        page.title,
        page.description,
        page.language,
        page.canonical_url,
        page.links.len()
    );
    println!("{}", page.markdown);
    Ok(())
}
