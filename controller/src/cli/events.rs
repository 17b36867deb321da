//! `nomarch events [--watch]`: one compact line per event, oldest first (Warnings in colour on
//! a terminal), or one JSON object per line with `-o json`.

use std::io::IsTerminal;

use clap::ValueEnum;

use crate::store::{decode_event, Event, EventFilter, EventType, WatchEvent};

use super::say;
use super::{CliError, StoreArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsOutput {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How each event is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Coloured,
    Json,
}

impl Style {
    pub fn choose(output: Option<EventsOutput>, color: ColorChoice) -> Style {
        match (output, color) {
            (Some(EventsOutput::Json), _) => Style::Json,
            (None, ColorChoice::Always) => Style::Coloured,
            (None, ColorChoice::Never) => Style::Plain,
            (None, ColorChoice::Auto) => {
                let wanted = std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                if wanted {
                    Style::Coloured
                } else {
                    Style::Plain
                }
            }
        }
    }

    pub fn render(self, event: &Event) -> String {
        match self {
            Style::Json => serde_json::to_string(event).expect("events serialize"),
            Style::Plain => format_event(event, false),
            Style::Coloured => format_event(event, true),
        }
    }
}

pub async fn run(
    store_args: &StoreArgs,
    watch: bool,
    filter: &EventFilter,
    style: Style,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let (events, revision) = store.list_events().await?;
    for event in events.iter().filter(|e| filter.matches(e)) {
        say!("{}", style.render(event));
    }
    if !watch {
        return Ok(());
    }
    let mut stream = store.watch_prefix(store.keys().events(), revision + 1);
    loop {
        tokio::select! {
            item = stream.recv() => match item {
                Some(Ok(WatchEvent::Put(item))) => {
                    if let Some(event) = decode_event(&item.value).filter(|e| filter.matches(e)) {
                        say!("{}", style.render(&event));
                    }
                }
                // Expiry and compaction: nothing new to show.
                Some(Ok(_)) => {}
                Some(Err(e)) => eprintln!("watch interrupted, reconnecting: {e}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// `15:04:05  Warning  SyncFailed        gitsource/state  commit 1a2b…: … (x3)`
pub fn format_event(event: &Event, colour: bool) -> String {
    let count = if event.count > 1 {
        format!(" (x{})", event.count)
    } else {
        String::new()
    };
    let type_ = format!("{:<7}", format!("{:?}", event.type_));
    let time = event.last_timestamp.format("%Y-%m-%dT%H:%M:%SZ");
    let object = format!("{:<24}", event.object.to_string());
    if !colour {
        return format!(
            "{time}  {type_}  {:<16}  {object}  {}{count}",
            event.reason, event.message
        );
    }
    let type_colour = match event.type_ {
        EventType::Warning => YELLOW,
        EventType::Normal => GREEN,
    };
    format!(
        "{DIM}{time}{RESET}  {type_colour}{type_}{RESET}  {BOLD}{:<16}{RESET}  {object}  {}{DIM}{count}{RESET}",
        event.reason, event.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::{Kind, ObjectRef};

    fn event(type_: EventType) -> Event {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .to_utc();
        Event {
            type_,
            reason: "SyncFailed".into(),
            object: ObjectRef::new(Kind::GitSource, "default", "state"),
            message: "commit abc: bad".into(),
            count: 3,
            first_timestamp: at,
            last_timestamp: at,
            source: "test".into(),
        }
    }

    #[test]
    fn lines_are_compact_and_colour_only_when_asked() {
        let plain = Style::Plain.render(&event(EventType::Warning));
        assert_eq!(
            plain,
            "2026-11-22T10:00:00Z  Warning  SyncFailed        gitsource/state           commit abc: bad (x3)"
        );
        let coloured = Style::Coloured.render(&event(EventType::Warning));
        assert!(coloured.contains("\x1b[33mWarning"), "{coloured:?}");
        assert!(!plain.contains('\x1b'));
        let json: serde_json::Value =
            serde_json::from_str(&Style::Json.render(&event(EventType::Normal))).unwrap();
        assert_eq!(json["type"], "Normal");
        assert_eq!(json["object"]["kind"], "GitSource");
    }

    #[test]
    fn filters_match_every_field_they_set() {
        let warning = event(EventType::Warning);
        let cases = [
            (EventFilter::default(), true),
            (
                EventFilter::parse(Some("gs"), None, None, None).unwrap(),
                true,
            ),
            (
                EventFilter::parse(Some("app"), None, None, None).unwrap(),
                false,
            ),
            (
                EventFilter::parse(None, Some("default"), Some("state"), Some("warning")).unwrap(),
                true,
            ),
            (
                EventFilter::parse(None, Some("prod"), None, None).unwrap(),
                false,
            ),
            (
                EventFilter::parse(None, None, Some("other"), None).unwrap(),
                false,
            ),
            (
                EventFilter::parse(None, None, None, Some("Normal")).unwrap(),
                false,
            ),
        ];
        for (i, (filter, expected)) in cases.into_iter().enumerate() {
            assert_eq!(filter.matches(&warning), expected, "case {i}: {filter:?}");
        }
        assert!(EventFilter::parse(Some("deployment"), None, None, None).is_err());
        assert!(EventFilter::parse(None, None, None, Some("error")).is_err());
    }
}
