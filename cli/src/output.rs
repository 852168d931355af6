//! [`Output`]: what commands print on stdout, one line at a time, each
//! flushed at once so a reader of a pipe sees it immediately; and
//! [`EventLine`], the JSON shape of a delivered event.

use std::io::Write;

use herald_client::Event;
use serde::{Serialize, Serializer};

use crate::convert::AsJson;
use crate::error::CliError;

/// A line-oriented writer (stdout in the binary, a buffer in tests).
#[derive(Debug)]
pub struct Output<W: Write> {
    writer: W,
}

impl<W: Write> Output<W> {
    /// Writes lines to `writer`.
    pub fn new(writer: W) -> Output<W> {
        Output { writer }
    }

    /// Writes `value` as one line of compact JSON and flushes.
    pub fn json_line(&mut self, value: &impl Serialize) -> Result<(), CliError> {
        serde_json::to_writer(&mut self.writer, value).map_err(std::io::Error::from)?;
        self.end_line()
    }

    /// Writes `text` as one line and flushes.
    pub fn text_line(&mut self, text: &str) -> Result<(), CliError> {
        self.writer.write_all(text.as_bytes())?;
        self.end_line()
    }

    fn end_line(&mut self) -> Result<(), CliError> {
        self.writer.write_all(b"\n")?;
        self.writer.flush()?;
        Ok(())
    }

    /// The writer, e.g. to inspect what a test printed.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

/// One delivered event as `herald sub` prints it:
/// `{"namespace":…,"event":…,"room":…,"payload":…}`, `room` only when the
/// event was emitted to a room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLine {
    /// The namespace it was emitted in.
    pub namespace: String,
    /// The event's name.
    pub event: String,
    /// The room it was emitted to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The payload, printed as JSON (see [`crate::convert`]).
    #[serde(serialize_with = "as_json")]
    pub payload: rmpv::Value,
}

/// Serializes a MessagePack value as its JSON form.
fn as_json<S: Serializer>(value: &rmpv::Value, serializer: S) -> Result<S::Ok, S::Error> {
    AsJson(value).serialize(serializer)
}

impl From<Event<rmpv::Value>> for EventLine {
    fn from(event: Event<rmpv::Value>) -> EventLine {
        EventLine {
            payload: event.data,
            namespace: event.namespace,
            event: event.event,
            room: event.room,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(line: &EventLine) -> String {
        let mut output = Output::new(Vec::new());
        output.json_line(line).expect("writing to a Vec works");
        String::from_utf8(output.into_inner()).expect("JSON is UTF-8")
    }

    #[test]
    fn an_event_is_one_line_with_a_fixed_key_order() {
        let line = EventLine {
            namespace: "/orders".into(),
            event: "order.created".into(),
            room: None,
            payload: rmpv::Value::Map(vec![
                (rmpv::Value::from("id"), rmpv::Value::from(1)),
                (rmpv::Value::from("bin"), rmpv::Value::Binary(vec![7])),
            ]),
        };
        assert_eq!(
            printed(&line),
            "{\"namespace\":\"/orders\",\"event\":\"order.created\",\"payload\":{\"id\":1,\"bin\":[7]}}\n"
        );
    }

    #[test]
    fn the_room_is_shown_when_there_is_one() {
        let line = EventLine {
            namespace: "/".into(),
            event: "a".into(),
            room: Some("eu west".into()),
            payload: rmpv::Value::from("line\nbreak"),
        };
        assert_eq!(
            printed(&line),
            "{\"namespace\":\"/\",\"event\":\"a\",\"room\":\"eu west\",\"payload\":\"line\\nbreak\"}\n"
        );
    }

    #[test]
    fn text_lines_end_with_a_newline() {
        let mut output = Output::new(Vec::new());
        output
            .text_line("published 1 event to 0 receivers")
            .expect("ok");
        assert_eq!(output.into_inner(), b"published 1 event to 0 receivers\n");
    }
}
