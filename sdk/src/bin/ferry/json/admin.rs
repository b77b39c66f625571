//! `--json` forms of tokens (never with a secret, except the one answer that makes a
//! token) and of the audit log, in the conventions of the parent module.

use ferry_sdk::pb;
use serde_json::Value;

use super::{enum_value, timestamp, Object, ToJson};

impl ToJson for pb::Token {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("name", self.name.as_str())
            .field("role", enum_value::<pb::Role>(self.role))
            .field("site", self.site.as_str())
            .field("create_time", timestamp(self.create_time.as_ref()))
            .field("expire_time", timestamp(self.expire_time.as_ref()))
            .field("revoke_time", timestamp(self.revoke_time.as_ref()))
            .field("created_by", self.created_by.as_str())
            .done()
    }
}

impl ToJson for pb::WhoAmIResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field("name", self.name.as_str())
            .field("role", enum_value::<pb::Role>(self.role))
            .field("site", self.site.as_str())
            .field("expire_time", timestamp(self.expire_time.as_ref()))
            .field("principal", self.principal.as_str())
            .done()
    }
}

impl ToJson for pb::CreateTokenResponse {
    fn to_json(&self) -> Value {
        Object::new()
            .field(
                "token",
                self.token.as_ref().map_or(Value::Null, ToJson::to_json),
            )
            .field("secret", self.secret.as_str())
            .done()
    }
}

impl ToJson for pb::AuditEvent {
    fn to_json(&self) -> Value {
        Object::new()
            .field("id", self.id.as_str())
            .field("time", timestamp(self.time.as_ref()))
            .field("principal", self.principal.as_str())
            .field("role", enum_value::<pb::Role>(self.role))
            .field("method", self.method.as_str())
            .field("resource", self.resource.as_str())
            .field("summary", self.summary.as_str())
            .field("outcome", self.outcome.as_str())
            .done()
    }
}
