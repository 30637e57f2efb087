//! The OpenAPI 3.1 description `GET /sealpost/v1/openapi.json` serves (no token). It does not
//! describe the evidence routes yet.

use serde_json::{json, Value};

/// The OpenAPI 3.1 description of every endpoint `sealpost serve` answers.
pub fn openapi() -> Value {
    let error = json!({ "description": "Graph error envelope", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let ok = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": { "type": "object" } } } });
    let bearer = json!([{ "bearer": [] }]);
    let op = |summary: &str, secured: bool| {
        let mut o = json!({ "summary": summary, "responses": { "200": ok(summary), "400": error, "401": error, "403": error, "429": error, "500": error, "503": error } });
        if secured {
            o["security"] = bearer.clone();
        }
        o
    };
    let version = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^v(1[7-9]|2[0-6])\\.0$" } });
    let id = |name: &str| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Sealpost (Cloud API compatible)", "version": env!("CARGO_PKG_VERSION"), "license": { "name": "AGPL-3.0-only" } },
        "paths": {
            "/{version}/{phone_number_id}/messages": {
                "parameters": [version, id("phone_number_id")],
                "post": op("Send a message (text, template, media, interactive, reaction), or mark one read ({status: read})", true),
                "put": op("Mark an inbound message read", true),
            },
            "/{phone_number_id}/messages": { "parameters": [id("phone_number_id")], "post": op("Send a message (default version)", true), "put": op("Mark read (default version)", true) },
            "/{version}/{id}": {
                "parameters": [version, id("id")],
                "get": op("A phone number (display number, quality rating, throughput, messaging-limit tier) or a media object (url valid 5 minutes, mime_type, sha256, file_size)", true),
                "delete": op("Delete a media object (its key is destroyed)", true),
            },
            "/{version}/{phone_number_id}/media": { "parameters": [version, id("phone_number_id")], "post": {
                "summary": "Upload media (multipart/form-data: messaging_product, file, optional type); at most 16 MiB",
                "security": bearer.clone(),
                "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["messaging_product", "file"], "properties": { "messaging_product": { "type": "string", "const": "whatsapp" }, "file": { "type": "string", "format": "binary" }, "type": { "type": "string" } } } } } },
                "responses": { "200": ok("{id}"), "400": error, "401": error, "403": error, "500": error, "503": error },
            } },
            "/sealpost/v1/media/{media_id}": { "parameters": [id("media_id"), { "name": "expires", "in": "query", "required": true, "schema": { "type": "integer" } }, { "name": "signature", "in": "query", "required": true, "schema": { "type": "string" } }], "get": {
                "summary": "Download a media object through the signed URL of its description (same bearer token)",
                "security": bearer.clone(),
                "responses": { "200": { "description": "The bytes", "content": { "*/*": {} } }, "400": error, "401": error, "403": error },
            } },
            "/{version}/{phone_number_id}/settings": {
                "parameters": [version, id("phone_number_id")],
                "get": op("Local Storage configuration", true),
                "post": op("Set storage_configuration (only while unregistered)", true),
            },
            "/{version}/{phone_number_id}/register": { "parameters": [version, id("phone_number_id")], "post": op("Register the number (6-digit PIN)", true) },
            "/{version}/{phone_number_id}/deregister": { "parameters": [version, id("phone_number_id")], "post": op("Deregister the number", true) },
            "/{version}/{waba_id}/message_templates": {
                "parameters": [version, id("waba_id")],
                "get": op("List templates", true),
                "post": op("Submit a template for review", true),
                "delete": op("Delete a template (?name=)", true),
            },
            "/{version}/{app_id}/subscriptions": { "parameters": [version, id("app_id")], "post": op("Subscribe a webhook callback (verified by hub.challenge); JSON or form-encoded", true) },
            "/sealpost/v1/tokens": {
                "get": op("The business's live system-user tokens (ids and scopes; management scope)", true),
                "post": op("Issue a system-user token with a subset of the caller's scopes ({scopes: [...]}); shown once", true),
            },
            "/sealpost/v1/tokens/{token_id}": { "parameters": [id("token_id")], "delete": op("Revoke one of the business's tokens, with immediate effect", true) },
            "/sim/v1/devices/{wa_id}/messages": { "parameters": [id("wa_id")], "post": op("A simulated device sends a message to a business number", false) },
            "/sim/v1/devices/{wa_id}/inbox": { "parameters": [id("wa_id")], "get": op("What a simulated device received and decrypted, and which of its messages the business read", false) },
            "/sim/v1/devices/{wa_id}/report": { "parameters": [id("wa_id")], "post": op("A simulated device reports a business number as spam or blocks it ({to, type: spam|block})", false) },
            "/sim/v1/devices/{wa_id}/presence": { "parameters": [id("wa_id")], "post": op("A simulated device goes offline or online ({online: bool})", false) },
            "/sim/v1/clock/advance": { "post": op("Move the simulated clock ({seconds: N}; only with --sim-clock)", false) },
            "/sealpost/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": ok("OpenAPI 3.1") } } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["message", "type", "code", "fbtrace_id"], "properties": {
                        "message": { "type": "string" }, "type": { "type": "string" }, "code": { "type": "integer" },
                        "error_data": { "type": "object", "properties": { "messaging_product": { "type": "string" }, "details": { "type": "string" } } },
                        "fbtrace_id": { "type": "string" } } } },
                },
            },
        },
    })
}
