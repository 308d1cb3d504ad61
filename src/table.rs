//! The CLI's tables (connectors, tasks, offsets, plugins, topics), laid out
//! by comfy-table: columns sized to their widest cell by display width, so
//! wide characters in names keep the columns straight.

use comfy_table::{presets, CellAlignment, Table};

/// Prints `rows` under `headers`; columns listed in `right` are right-aligned
/// (numbers).
pub fn print(headers: &[&str], rows: Vec<Vec<String>>, right: &[usize]) {
    let mut table = Table::new();
    // Plain columns two spaces apart, no borders: output that `grep` and
    // `awk` read as before.
    table.load_style(presets::NOTHING);
    table.set_header(headers.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}
