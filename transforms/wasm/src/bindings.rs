//! Host bindings of the `transform` world, generated from `transforms/wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transform",
    additional_derives: [PartialEq],
});

pub use sluice::transform::types::{
    Changes, Data, Edit, Field, Header, Level, Outcome, Parts, Span,
};
