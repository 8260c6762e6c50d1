//! `GET /openapi.json`: the API description. [`ROUTES`] lists every route of
//! [`crate::app`]; a test checks that the document describes exactly these and that
//! each answers, so the description cannot drift from the router.

use axum::Json;
use serde_json::{Value, json};

/// Every (method, path) the router serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/sync"),
    ("post", "/v1/enrol"),
    ("get", "/v1/records"),
    ("get", "/v1/records.ndjson"),
    ("get", "/v1/records.csv"),
    ("get", "/v1/feed"),
    ("post", "/v1/admin/cadres"),
    ("get", "/v1/admin/cadres"),
    ("post", "/v1/admin/cadres/{id}/codes"),
    ("get", "/v1/admin/devices"),
    ("post", "/v1/admin/devices/{key}/revoke"),
    ("post", "/v1/admin/departments/{department}/tokens"),
    ("get", "/v1/admin/department-tokens"),
    ("post", "/v1/admin/department-tokens/{key}/revoke"),
];

fn error_responses(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert((*c).to_owned(), json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }));
    }
    Value::Object(m)
}

fn op(summary: &str, security: Option<&str>, params: Value, ok: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    if let (Value::Object(r), Value::Object(o)) = (&mut responses, ok) {
        r.extend(o);
    }
    let mut o = json!({ "summary": summary, "responses": responses, "parameters": params });
    if let Some(s) = security {
        o["security"] = json!([{ s: [] }]);
    }
    o
}

fn q(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn p(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

fn ok(status: &str, media: &str, schema: Value) -> Value {
    json!({ status: { "description": "success", "content": { media: { "schema": schema } } } })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let s = json!({ "type": "string" });
    let filter = |extra: Vec<Value>| {
        let mut v = vec![
            q(
                "entity",
                "Only this entity type (must be one the department sees).",
                s.clone(),
            ),
            q(
                "village",
                "Only this village (must be one the department sees).",
                s.clone(),
            ),
        ];
        v.extend(extra);
        Value::Array(v)
    };
    let record = json!({ "$ref": "#/components/schemas/Record" });
    let mut paths = serde_json::Map::new();
    let mut add = |method: &str, path: &str, o: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = o;
    };
    add(
        "get",
        "/healthz",
        op(
            "Liveness and record count.",
            None,
            json!([]),
            ok("200", "application/json", json!({"type": "object"})),
            &["500"],
        ),
    );
    add(
        "get",
        "/metrics",
        op(
            "Prometheus metrics.",
            None,
            json!([]),
            ok("200", "text/plain", s.clone()),
            &[],
        ),
    );
    add(
        "get",
        "/openapi.json",
        op(
            "This document.",
            None,
            json!([]),
            ok("200", "application/json", json!({"type": "object"})),
            &[],
        ),
    );
    let mut sync = op(
        "One sync exchange (binary: \"YBS\", version byte, zstd(postcard)); see ARCHITECTURE.md.",
        Some("device"),
        json!([]),
        ok(
            "200",
            "application/x-yibiao-sync",
            json!({"type": "string", "format": "binary"}),
        ),
        &["400", "401", "413", "426", "429", "500"],
    );
    sync["requestBody"] = json!({ "required": true, "content": { "application/x-yibiao-sync": { "schema": { "type": "string", "format": "binary" } } } });
    add("post", "/v1/sync", sync);
    let mut enrol = op(
        "Redeem a one-time enrolment code for a device token.",
        None,
        json!([]),
        ok(
            "200",
            "application/json",
            json!({ "type": "object", "properties": { "token": s, "device": s, "cadre": s, "village": { "type": ["string", "null"] } } }),
        ),
        &["400", "401", "429"],
    );
    enrol["requestBody"] = json_body(
        json!({ "type": "object", "required": ["code", "device"], "properties": { "code": s, "device": s } }),
    );
    add("post", "/v1/enrol", enrol);
    add(
        "get",
        "/v1/records",
        op(
            "One page of the department's records (its fields and villages only).",
            Some("department"),
            filter(vec![
                q(
                    "limit",
                    "Page size, 1 to 1000 (default 100).",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                ),
                q(
                    "after",
                    "The `next` of the previous page.",
                    json!({"type": "string", "format": "uuid"}),
                ),
                q(
                    "include_deleted",
                    "Include tombstoned records.",
                    json!({"type": "boolean"}),
                ),
            ]),
            ok(
                "200",
                "application/json",
                json!({ "type": "object", "properties": { "records": { "type": "array", "items": record }, "next": { "type": ["string", "null"] } } }),
            ),
            &["400", "401", "403", "429"],
        ),
    );
    add(
        "get",
        "/v1/records.ndjson",
        op(
            "Every record of the department's view, one JSON object per line, streamed.",
            Some("department"),
            filter(vec![q(
                "include_deleted",
                "Include tombstoned records.",
                json!({"type": "boolean"}),
            )]),
            ok("200", "application/x-ndjson", s.clone()),
            &["400", "401", "403", "429"],
        ),
    );
    add(
        "get",
        "/v1/records.csv",
        op(
            "Every record as CSV (UTF-8 with BOM for Excel), columns = the view's or the form's fields.",
            Some("department"),
            filter(vec![
                q(
                    "form",
                    "Columns of this form (one the department reads).",
                    s.clone(),
                ),
                q(
                    "include_deleted",
                    "Include tombstoned records.",
                    json!({"type": "boolean"}),
                ),
            ]),
            ok("200", "text/csv", s.clone()),
            &["400", "401", "403", "429"],
        ),
    );
    add(
        "get",
        "/v1/feed",
        op(
            "Everything that changed since `cursor`, in order; replay from any cursor.",
            Some("department"),
            filter(vec![
                q(
                    "cursor",
                    "The `next_cursor` of the previous answer (0 = from the start).",
                    json!({"type": "integer", "minimum": 0}),
                ),
                q(
                    "limit",
                    "Changes per answer, 1 to 1000 (default 100).",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                ),
            ]),
            ok(
                "200",
                "application/json",
                json!({ "type": "object", "properties": { "changes": { "type": "array", "items": record }, "next_cursor": { "type": "integer" }, "more": { "type": "boolean" } } }),
            ),
            &["400", "401", "403", "429"],
        ),
    );
    let mut cadre = op(
        "Create a cadre.",
        Some("admin"),
        json!([]),
        ok("201", "application/json", json!({"type": "object"})),
        &["400", "401", "409"],
    );
    cadre["requestBody"] = json_body(
        json!({ "type": "object", "required": ["id", "name"], "properties": { "id": s, "name": s, "village": { "type": ["string", "null"], "description": "null for township staff" } } }),
    );
    add("post", "/v1/admin/cadres", cadre);
    add(
        "get",
        "/v1/admin/cadres",
        op(
            "List cadres.",
            Some("admin"),
            json!([]),
            ok("200", "application/json", json!({"type": "object"})),
            &["401"],
        ),
    );
    let mut code = op(
        "Issue a one-time enrolment code for a cadre.",
        Some("admin"),
        json!([p("id")]),
        ok(
            "201",
            "application/json",
            json!({ "type": "object", "properties": { "code": s, "expires_ms": { "type": "integer" } } }),
        ),
        &["400", "401", "404"],
    );
    code["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "ttl_minutes": { "type": "integer", "minimum": 1, "maximum": 10080 } } } } } });
    add("post", "/v1/admin/cadres/{id}/codes", code);
    add(
        "get",
        "/v1/admin/devices",
        op(
            "List devices.",
            Some("admin"),
            json!([]),
            ok("200", "application/json", json!({"type": "object"})),
            &["401"],
        ),
    );
    add(
        "post",
        "/v1/admin/devices/{key}/revoke",
        op(
            "Revoke a device token, at once.",
            Some("admin"),
            json!([p("key")]),
            ok("200", "application/json", json!({"type": "object"})),
            &["401", "404"],
        ),
    );
    let mut dtoken = op(
        "Issue a department token.",
        Some("admin"),
        json!([p("department")]),
        ok(
            "201",
            "application/json",
            json!({ "type": "object", "properties": { "token": s, "key": s, "department": s } }),
        ),
        &["400", "401", "404"],
    );
    dtoken["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "name": s } } } } });
    add("post", "/v1/admin/departments/{department}/tokens", dtoken);
    add(
        "get",
        "/v1/admin/department-tokens",
        op(
            "List department tokens.",
            Some("admin"),
            json!([]),
            ok("200", "application/json", json!({"type": "object"})),
            &["401"],
        ),
    );
    add(
        "post",
        "/v1/admin/department-tokens/{key}/revoke",
        op(
            "Revoke a department token, at once.",
            Some("admin"),
            json!([p("key")]),
            ok("200", "application/json", json!({"type": "object"})),
            &["401", "404"],
        ),
    );

    json!({
        "openapi": "3.1.0",
        "info": { "title": "yibiao server", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Phones sync here; departments pull merged records here." },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "device": { "type": "http", "scheme": "bearer", "description": "device token (ybd_...)" },
                "department": { "type": "http", "scheme": "bearer", "description": "department token (ybk_...)" },
                "admin": { "type": "http", "scheme": "bearer", "description": "admin token (yba_...)" }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": { "code": s, "message": s } } } },
                "Record": { "type": "object", "properties": {
                    "seq": { "type": "integer", "description": "feed only" },
                    "id": { "type": "string", "format": "uuid" }, "entity": s, "village": { "type": ["string", "null"] },
                    "deleted": { "type": "boolean" }, "conflicted": { "type": "boolean" },
                    "values": { "type": "object", "description": "field key -> value, only the department's fields" },
                    "conflicts": { "type": "object", "description": "field key -> every competing value with cadre, device, at_ms" }
                } }
            }
        }
    })
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(document())
}
