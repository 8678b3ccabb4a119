//! JSON text as Python's `json.dumps(obj, indent=2)` writes it, for the files a Hugging Face
//! loader reads: floats in Python's `repr` (`1e-05`, `10000.0`), so an exported `config.json`
//! reads like one transformers wrote.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// `v` pretty-printed with two-space indents and Python's float notation.
pub fn to_string_pretty(v: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, PyFormatter(PrettyFormatter::new()));
    v.serialize(&mut ser).expect("json values serialize");
    String::from_utf8(out).expect("json is utf-8")
}

/// The JSON number of an `f32` config value: the shortest decimal that reads back as the same
/// f32 (`1e-5`, not the f64 widening `9.999999747378752e-6`).
pub fn f32_number(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Python's `repr` of a finite float: the shortest round-trip digits, in positional notation
/// for exponents -4..16 and otherwise as `d.ddde±XX` (at least two exponent digits).
pub fn py_float(v: f64) -> String {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    if (-4..16).contains(&exp) {
        let s = v.to_string();
        if s.contains('.') { s } else { s + ".0" }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

struct PyFormatter<'a>(PrettyFormatter<'a>);

impl Formatter for PyFormatter<'_> {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(py_float(v).as_bytes())
    }

    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(v))
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (v, py) in [
            (1e-5, "1e-05"),
            (1e-6, "1e-06"),
            (10000.0, "10000.0"),
            (500_000.0, "500000.0"),
            (0.02, "0.02"),
            (0.0, "0.0"),
            (0.0001, "0.0001"),
            (1.5e16, "1.5e+16"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(py_float(v), py, "{v}");
        }
        assert_eq!(f32_number(1e-5_f32), serde_json::json!(1e-5));
        assert_eq!(f32_number(1e-6_f32).as_f64(), Some(1e-6));
        let text = to_string_pretty(&serde_json::json!({"eps": f32_number(1e-5), "n": [1, 2]}));
        assert_eq!(
            text,
            "{\n  \"eps\": 1e-05,\n  \"n\": [\n    1,\n    2\n  ]\n}"
        );
    }
}
