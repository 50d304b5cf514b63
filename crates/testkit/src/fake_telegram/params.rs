//! Method parameters from the query string, a JSON body, a form-urlencoded body or a
//! multipart body, merged into one object (body over query). Form and query values are
//! strings; the typed getters accept both the JSON and the string spellings.

use serde_json::{Map, Value};

/// A `Bad Request` description (without the `Bad Request: ` prefix).
pub(crate) type BadRequest = String;

#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub Map<String, Value>);

impl Params {
    /// Merges the query string and the body as sent with `content_type`.
    pub fn parse(
        query: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Params, BadRequest> {
        let mut map = Map::new();
        if let Some(q) = query {
            map.extend(form_pairs(q));
        }
        let ct = content_type.to_ascii_lowercase();
        let text = String::from_utf8_lossy(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            // Nothing to merge.
        } else if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(obj)) => map.extend(obj),
                Ok(_) => return Err("parameters must be a JSON object".into()),
                Err(_) => return Err("can't parse JSON request body".into()),
            }
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            map.extend(form_pairs(&text));
        } else if ct.starts_with("multipart/form-data") {
            let boundary = ct_param(content_type, "boundary").ok_or("no multipart boundary")?;
            map.extend(multipart_pairs(body, &boundary));
        } else if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
            map.extend(obj);
        } else {
            map.extend(form_pairs(&text));
        }
        Ok(Params(map))
    }

    pub fn value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string; numbers and booleans are rendered, objects and arrays serialized.
    pub fn str(&self, name: &str) -> Option<String> {
        Some(match self.get(name)? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// An integer from a JSON number or a decimal string.
    pub fn i64(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        let bad = || format!("invalid {name} specified");
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// Seconds and the like; accepts fractions.
    pub fn f64(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// `true`/`false`, `1`/`0` (as JSON or as strings); anything else is false.
    pub fn bool(&self, name: &str) -> bool {
        match self.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => {
                matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1")
            }
            _ => false,
        }
    }

    /// An object or array given as JSON or as a JSON string (form bodies).
    pub fn json(&self, name: &str, what: &str) -> Result<Option<Value>, BadRequest> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|_| format!("can't parse {what} JSON object")),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// A list of strings (e.g. `allowed_updates`), as a JSON array or a JSON string.
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>, BadRequest> {
        let Some(v) = self.json(name, name)? else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .ok_or_else(|| format!("{name} must be an array"))?;
        Ok(Some(
            list.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ))
    }
}

/// `a=1&b=x%20y` → string values (later keys win).
fn form_pairs(s: &str) -> Map<String, Value> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), Value::String(percent_decode(v)))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as space); invalid escapes stay literal.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            out.push(b' ');
        } else if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => out.push(b),
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `; name=value` parameter of a header value (quotes removed).
fn ct_param(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Text fields of a `multipart/form-data` body; file parts are kept as lossy text.
fn multipart_pairs(body: &[u8], boundary: &str) -> Map<String, Value> {
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    let mut map = Map::new();
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| ct_param(l, "name"));
        if let Some(name) = name {
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            map.insert(name, Value::String(value.to_string()));
        }
    }
    map
}
