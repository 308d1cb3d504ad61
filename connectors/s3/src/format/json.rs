use sluice_api::json::JsonView;
use sluice_api::{ConnectError, Record};

/// One value per line, as Confluent's JsonFormat writes.
pub fn encode(records: &[Record]) -> Result<Vec<u8>, ConnectError> {
    let mut out = Vec::with_capacity(records.len() * 256);
    for r in records {
        serde_json::to_writer(
            &mut out,
            &JsonView::new(r.value_schema.as_deref(), &r.value),
        )
        .map_err(|e| {
            ConnectError::data(format!(
                "cannot write record {} as JSON: {e}",
                r.coordinates()
            ))
        })?;
        out.push(b'\n');
    }
    Ok(out)
}
