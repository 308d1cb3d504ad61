use sluice_api::json::JsonView;
use sluice_api::ConnectError;

use super::Decoded;

/// One value per line, as Confluent's JsonFormat writes.
pub fn encode(rows: &[Decoded<'_>]) -> Result<Vec<u8>, ConnectError> {
    let mut out = Vec::with_capacity(rows.len() * 256);
    for r in rows {
        serde_json::to_writer(&mut out, &JsonView::new(r.schema.map(|s| &**s), &r.value)).map_err(
            |e| {
                let at = r
                    .offset
                    .map(|o| format!(" at offset {o}"))
                    .unwrap_or_default();
                ConnectError::data(format!("cannot write the record{at} as JSON: {e}"))
            },
        )?;
        out.push(b'\n');
    }
    Ok(out)
}
