//! A cell in PostgreSQL's binary COPY form: the bytes each wire type takes,
//! written straight from the cell (no per-type library conversions).

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::types::{Cell, Wire};

/// PostgreSQL's epoch (2000-01-01) from Unix's, in days and microseconds.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The wire types as tokio-postgres names them, for the COPY writer.
pub fn pg_type(wire: Wire) -> Type {
    match wire {
        Wire::Bool => Type::BOOL,
        Wire::I16 => Type::INT2,
        Wire::I32 => Type::INT4,
        Wire::I64 => Type::INT8,
        Wire::F32 => Type::FLOAT4,
        Wire::F64 => Type::FLOAT8,
        Wire::Text => Type::TEXT,
        Wire::Bytes => Type::BYTEA,
        Wire::Date => Type::DATE,
        Wire::Time => Type::TIME,
        Wire::Timestamp => Type::TIMESTAMP,
        Wire::TimestampTz => Type::TIMESTAMPTZ,
    }
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => return Ok(IsNull::Yes),
            Cell::Bool(b) => out.put_u8(u8::from(*b)),
            Cell::I16(n) => out.put_i16(*n),
            Cell::I32(n) => out.put_i32(*n),
            Cell::I64(n) => out.put_i64(*n),
            Cell::F32(f) => out.put_f32(*f),
            Cell::F64(f) => out.put_f64(*f),
            Cell::Text(s) => out.put_slice(s.as_bytes()),
            Cell::Bytes(b) => out.put_slice(b),
            Cell::Date(d) => out.put_i32(d.saturating_sub(PG_EPOCH_DAYS)),
            Cell::Micros(us) => {
                if *ty == Type::TIME {
                    out.put_i64(*us)
                } else {
                    out.put_i64(us.saturating_sub(PG_EPOCH_MICROS))
                }
            }
        }
        Ok(IsNull::No)
    }

    /// The staging table is built from the same wire types the cells were
    /// made for, so the writer's types always match.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(cell: Cell, ty: Type) -> Vec<u8> {
        let mut out = BytesMut::new();
        cell.to_sql(&ty, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn binary_forms() {
        assert_eq!(
            bytes(Cell::Date(PG_EPOCH_DAYS + 1), Type::DATE),
            1i32.to_be_bytes()
        );
        assert_eq!(
            bytes(Cell::Micros(PG_EPOCH_MICROS), Type::TIMESTAMPTZ),
            0i64.to_be_bytes()
        );
        assert_eq!(bytes(Cell::Micros(5), Type::TIME), 5i64.to_be_bytes());
        assert_eq!(bytes(Cell::Text("é".into()), Type::TEXT), "é".as_bytes());
        let mut out = BytesMut::new();
        assert!(matches!(
            Cell::Null.to_sql(&Type::INT4, &mut out).unwrap(),
            IsNull::Yes
        ));
    }
}
