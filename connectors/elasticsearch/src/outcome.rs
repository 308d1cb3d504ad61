//! What the server said about each action of a `_bulk` request, classified
//! into what the task does next. Pure: parses and decides, sends nothing.

use serde_json::Value as Json;

/// Error types that mean the document itself is bad: no retry will index it.
const MALFORMED: &[&str] = &[
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "action_request_validation_exception",
];

/// One item's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written (or, for a delete, already absent).
    Done,
    /// An equal or newer version is already indexed: a replay, ignored.
    Conflict,
    /// The server is too busy for it now (429): send it again, and less at once.
    Busy(String),
    /// The server could not take it now (5xx): send it again.
    Retry(String),
    /// The document is bad (mapping, parsing): the server's reason.
    Malformed(String),
    /// Anything else the server refused: the server's reason.
    Failed(String),
}

/// The whole response could not be read as a `_bulk` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// Classifies every item of a `_bulk` response body, in request order.
pub fn classify(body: &[u8], expected: usize) -> Result<Vec<Outcome>, Unreadable> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| Unreadable(format!("the _bulk response is not JSON: {e}")))?;
    let items = json
        .get("items")
        .and_then(Json::as_array)
        .ok_or_else(|| Unreadable("the _bulk response has no items".into()))?;
    if items.len() != expected {
        return Err(Unreadable(format!(
            "the _bulk response has {} items for {expected} actions",
            items.len()
        )));
    }
    Ok(items.iter().map(item).collect())
}

fn item(item: &Json) -> Outcome {
    // Each item is {"<op>": {...}} with exactly one key.
    let Some(body) = item.as_object().and_then(|o| o.values().next()) else {
        return Outcome::Failed("an item of the _bulk response has no body".into());
    };
    let status = body.get("status").and_then(Json::as_u64).unwrap_or(0);
    let error = body.get("error");
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(Json::as_str)
        .unwrap_or("");
    match status {
        200..=299 if error.is_none() => Outcome::Done,
        // Deleting what is not there leaves the index as asked.
        404 if error.is_none()
            && body.get("result").and_then(Json::as_str) == Some("not_found") =>
        {
            Outcome::Done
        }
        409 if kind == "version_conflict_engine_exception" => Outcome::Conflict,
        429 => Outcome::Busy(reason(error, status)),
        500..=599 => Outcome::Retry(reason(error, status)),
        _ if MALFORMED.contains(&kind) => Outcome::Malformed(reason(error, status)),
        _ => Outcome::Failed(reason(error, status)),
    }
}

/// `type: reason`, with each `caused_by` after it, as the server wrote them.
fn reason(error: Option<&Json>, status: u64) -> String {
    let Some(mut e) = error else {
        return format!("status {status}");
    };
    let mut out = String::new();
    loop {
        let kind = e.get("type").and_then(Json::as_str).unwrap_or("error");
        let why = e.get("reason").and_then(Json::as_str).unwrap_or("");
        if !out.is_empty() {
            out.push_str("; caused by ");
        }
        out.push_str(kind);
        if !why.is_empty() {
            out.push_str(": ");
            out.push_str(why);
        }
        match e.get("caused_by") {
            Some(c) if out.len() < 2000 => e = c,
            _ => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_classified_in_order() {
        let body = br#"{"errors":true,"items":[
            {"index":{"_id":"1","status":201,"result":"created"}},
            {"index":{"_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict"}}},
            {"index":{"_id":"3","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [n]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
            {"index":{"_id":"4","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"index":{"_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary not active"}}},
            {"delete":{"_id":"6","status":404,"result":"not_found"}},
            {"index":{"_id":"7","status":403,"error":{"type":"cluster_block_exception","reason":"index read-only"}}},
            {"create":{"_id":"8","status":400,"error":{"type":"strict_dynamic_mapping_exception","reason":"mapping set to strict"}}}
        ]}"#;
        let got = classify(body, 8).unwrap();
        assert_eq!(got[0], Outcome::Done);
        assert_eq!(got[1], Outcome::Conflict);
        assert_eq!(
            got[2],
            Outcome::Malformed("document_parsing_exception: failed to parse field [n]; caused by illegal_argument_exception: For input string: \"abc\"".into())
        );
        assert!(matches!(&got[3], Outcome::Busy(r) if r.contains("queue full")));
        assert!(matches!(got[4], Outcome::Retry(_)));
        assert_eq!(got[5], Outcome::Done);
        assert_eq!(
            got[6],
            Outcome::Failed("cluster_block_exception: index read-only".into())
        );
        assert!(matches!(got[7], Outcome::Malformed(_)));
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_unreadable() {
        assert!(classify(b"<html>", 1).is_err());
        assert!(classify(br#"{"items":[]}"#, 1).is_err());
        assert!(classify(br#"{"error":"x"}"#, 1).is_err());
    }
}
