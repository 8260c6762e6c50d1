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
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks"),
    ("get", "/v1/tasks/{task}"),
    ("delete", "/v1/tasks/{task}"),
    ("get", "/v1/summary"),
    ("get", "/v1/burden"),
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
    // Tasks and the summary take a department token or the admin token (the township).
    let either = json!([{ "department": [] }, { "admin": [] }]);
    let task = json!({ "$ref": "#/components/schemas/Task" });
    let mut new_task = op(
        "Issue a task to the phones of some villages (or of some records' villages); each phone gets it on its next sync and writes receipts back by itself.",
        None,
        json!([]),
        ok("201", "application/json", task.clone()),
        &["400", "401", "403", "404", "429"],
    );
    new_task["security"] = either.clone();
    new_task["requestBody"] = json_body(json!({
        "type": "object", "required": ["title", "form", "due"],
        "properties": {
            "title": s, "instructions": s,
            "form": { "type": "string", "description": "a form the issuer may use" },
            "due": { "type": "string", "description": "YYYY-MM-DD (end of that day, UTC+8) or an RFC 3339 time" },
            "villages": { "type": "array", "items": s, "description": "target villages; [\"*\"] = every village the issuer sees. Give this or records." },
            "records": { "type": "array", "items": { "type": "string", "format": "uuid" }, "description": "target records. Give this or villages." }
        }
    }));
    add("post", "/v1/tasks", new_task);
    let mut list_tasks = op(
        "Every task of the issuer (every task for the admin token) with progress per village, newest first.",
        None,
        json!([]),
        ok(
            "200",
            "application/json",
            json!({ "type": "object", "properties": { "tasks": { "type": "array", "items": task.clone() } } }),
        ),
        &["400", "401", "429"],
    );
    list_tasks["security"] = either.clone();
    add("get", "/v1/tasks", list_tasks);
    let mut show_task = op(
        "One task: per village delivered / opened / done / overdue, and target records complete.",
        None,
        json!([p("task")]),
        ok("200", "application/json", task.clone()),
        &["401", "404", "429"],
    );
    show_task["security"] = either.clone();
    add("get", "/v1/tasks/{task}", show_task);
    let mut cancel_task = op(
        "Cancel a task; phones drop it on their next sync.",
        None,
        json!([p("task")]),
        ok("200", "application/json", task.clone()),
        &["401", "404", "429"],
    );
    cancel_task["security"] = either.clone();
    add("delete", "/v1/tasks/{task}", cancel_task);
    let mut summary = op(
        "Per village x form: records complete / incomplete and task villages by status, plus totals per form.",
        None,
        json!([]),
        ok(
            "200",
            "application/json",
            json!({ "type": "object", "properties": { "generated_ms": { "type": "integer" }, "rows": { "type": "array" }, "totals": { "type": "array" } } }),
        ),
        &["400", "401", "429"],
    );
    summary["security"] = either;
    add("get", "/v1/summary", summary);
    add(
        "get",
        "/v1/burden",
        op(
            "The burden report: field values cadres typed in the period vs the (record, field, department) deliveries they produced.",
            Some("admin"),
            json!([
                q(
                    "from",
                    "First day, YYYY-MM-DD (UTC+8); default: `to`.",
                    s.clone()
                ),
                q(
                    "to",
                    "Last day, YYYY-MM-DD (UTC+8); default: today.",
                    s.clone()
                )
            ]),
            ok(
                "200",
                "application/json",
                json!({ "type": "object", "properties": {
                "values_typed": { "type": "integer" }, "deliveries": { "type": "integer" },
                "reuse_ratio": { "type": "number" }, "entries_saved": { "type": "integer" },
                "departments": { "type": "array" }, "fields": { "type": "array" } } }),
            ),
            &["400", "401"],
        ),
    );

    let village_progress = json!({ "type": "object", "properties": {
        "village": s, "document": s,
        "status": { "type": "string", "enum": ["sent", "delivered", "opened", "overdue", "done", "cancelled"] },
        "delivered": { "type": "boolean" }, "opened": { "type": "boolean" },
        "done": { "type": "boolean" }, "overdue": { "type": "boolean" },
        "delivered_ms": { "type": ["integer", "null"] }, "opened_ms": { "type": ["integer", "null"] },
        "done_ms": { "type": ["integer", "null"] },
        "done_how": { "type": ["string", "null"], "enum": ["complete", "marked", null] },
        "note": { "type": ["string", "null"] }, "done_by": { "type": ["string", "null"] },
        "phones": { "type": "integer" },
        "records_complete": { "type": "integer" }, "records_total": { "type": "integer" }
    } });
    let task_schema = json!({ "type": "object", "properties": {
        "task": s, "title": s, "instructions": s, "form": s, "due": s,
        "due_ms": { "type": "integer" }, "issuer": s, "created_ms": { "type": "integer" },
        "cancelled": { "type": "boolean" },
        "counts": { "type": "object", "description": "villages by status: sent, delivered, opened, overdue, done, cancelled" },
        "villages": { "type": "array", "items": village_progress }
    } });
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
                "Task": task_schema,
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
