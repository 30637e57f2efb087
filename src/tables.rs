//! The CLI's tables (`keys status`, `nodes`): comfy-table without borders, so a script still
//! splits a row into its columns on whitespace, and no cell holds a space it does not need.

/// A borderless table with `header`.
pub(crate) fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    t
}

/// `t` as text, without the padding at the ends of its lines.
pub(crate) fn drawn(t: &comfy_table::Table) -> String {
    t.to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}
