//! `fsbatch demo`: the whole workflow against a fake server started in this process: create a
//! batch of 1,000 events, wait for it, read every imported item and every failure.

use std::time::Duration;

use fullstory_batch::{ApiKey, BaseUrl, Config, EventRequest, FailedItem, Policy, UserId};
use fullstory_batch_fake::FakeServer;
use fullstory_batch_ureq::{Client, ClientOptions, Event};

use crate::output::Exit;

const ITEMS: usize = 1_000;
const KEY: &str = "demo-key";
const SHOWN: usize = 5;

pub fn run() -> Exit {
    let fake = match FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::from_secs(3))
        .start_blocking()
    {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("error: could not start the fake server: {e}");
            return Exit::Api;
        }
    };
    eprintln!("fake Fullstory API listening on {}", fake.base_url());
    let base_url = BaseUrl::parse_allow_http(fake.base_url()).expect("the fake's url is valid");
    let config = Config::new(ApiKey::new(KEY).expect("a valid key")).with_base_url(base_url);
    let client = Client::new(config, ClientOptions::new()).expect("no custom roots");

    eprintln!("importing {ITEMS} events; every 40th is named bad-… and the fake fails it");
    let (mut imported, mut failed) = (Vec::new(), Vec::new());
    let exit = crate::import::import_batches(
        &client,
        events(),
        Policy::default().with_timeout(Duration::from_secs(60)),
        false,
        &mut |event| match event {
            Event::Imported(items) => imported.extend(items.iter().cloned()),
            Event::Failed(items) => failed.extend(items.iter().cloned()),
            _ => {}
        },
    );
    show(&imported, &failed);
    match exit {
        // A partial failure is what the demo shows; the demo itself succeeded.
        Exit::Ok | Exit::JobFailed => Exit::Ok,
        other => other,
    }
}

fn events() -> Vec<EventRequest> {
    (0..ITEMS)
        .map(|i| {
            let name = if i % 40 == 7 {
                format!("bad-event-{i}")
            } else {
                format!("Demo Event {i}")
            };
            let mut properties = serde_json::Map::new();
            properties.insert("n".into(), i.into());
            EventRequest {
                name,
                user: Some(UserId {
                    uid: Some(format!("user-{}", i % 50)),
                    id: None,
                }),
                properties: Some(properties),
                ..EventRequest::default()
            }
        })
        .collect()
}

fn show(imported: &[EventRequest], failed: &[FailedItem<EventRequest>]) {
    println!("\nimported items: {}", imported.len());
    for item in imported.iter().take(SHOWN) {
        println!(
            "  {}",
            serde_json::to_string(item).expect("an event serialises")
        );
    }
    if imported.len() > SHOWN {
        println!("  … and {} more", imported.len() - SHOWN);
    }
    println!("failed items: {}", failed.len());
    for item in failed.iter().take(SHOWN) {
        let name = item.item.as_ref().map_or("?", |e| e.name.as_str());
        println!("  {name}: {} ({})", item.message, item.code);
    }
    if failed.len() > SHOWN {
        println!("  … and {} more", failed.len() - SHOWN);
    }
}
