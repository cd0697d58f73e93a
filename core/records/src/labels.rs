//! Display labels of the built-in fields and of their options, in English and Chinese, so that
//! every interface (the web app, the tenant's API document) shows `名称` / `Name` rather than
//! `name`. Custom fields carry the labels their company gave them.

use crate::meta::ObjectKey;
use serde_json::{json, Map, Value};

/// (key, English, Chinese) of the built-in fields, whatever the object.
const FIELDS: &[(&str, &str, &str)] = &[
    ("name", "Name", "名称"),
    ("kind", "Kind", "类型"),
    ("phone", "Phone", "电话"),
    ("email", "E-mail", "邮箱"),
    ("address", "Address", "地址"),
    ("region", "Region", "地区"),
    ("industry", "Industry", "行业"),
    ("source", "Source", "来源"),
    ("level", "Level", "级别"),
    ("stage", "Stage", "阶段"),
    ("owner_id", "Owner", "负责人"),
    ("team_id", "Team", "团队"),
    ("tags", "Tags", "标签"),
    ("customer_id", "Customer", "客户"),
    ("contact_id", "Contact", "联系人"),
    ("opportunity_id", "Opportunity", "商机"),
    ("pipeline_id", "Pipeline", "销售流程"),
    ("title", "Title", "标题"),
    ("is_primary", "Primary contact", "主要联系人"),
    ("subject", "Subject", "主题"),
    ("description", "Description", "描述"),
    ("channel", "Channel", "渠道"),
    ("type", "Type", "类型"),
    ("priority", "Priority", "优先级"),
    ("status", "Status", "状态"),
    ("assignee_id", "Assignee", "处理人"),
    ("amount", "Amount", "金额"),
    ("currency", "Currency", "币种"),
    ("discount_pct", "Discount %", "折扣 %"),
    ("expected_close", "Expected close", "预计成交日期"),
    ("probability", "Probability %", "赢率 %"),
    ("lost_reason", "Lost reason", "输单原因"),
    ("direction", "Direction", "方向"),
    ("body", "Content", "内容"),
    ("occurred_at", "Time", "时间"),
    ("duration_minutes", "Duration (min)", "时长（分钟）"),
    ("outcome", "Outcome", "结果"),
    ("notes", "Notes", "备注"),
    ("due_at", "Due", "截止时间"),
    ("remind_at", "Reminder", "提醒时间"),
    ("done_at", "Done", "完成时间"),
    ("record_type", "Record type", "记录类型"),
    // Every record's own columns (exports, printed pages).
    ("id", "ID", "编号"),
    ("created_at", "Created", "创建时间"),
    ("updated_at", "Updated", "更新时间"),
];

/// (object, English, Chinese) names of one record of the built-in objects.
const OBJECTS: &[(ObjectKey, &str, &str)] = &[
    (ObjectKey::Customers, "Customer", "客户"),
    (ObjectKey::Contacts, "Contact", "联系人"),
    (ObjectKey::Opportunities, "Opportunity", "商机"),
    (ObjectKey::Activities, "Activity", "活动"),
    (ObjectKey::Tasks, "Task", "任务"),
    (ObjectKey::Tickets, "Ticket", "工单"),
];

/// (option, English, Chinese) of the built-in selects' options.
const OPTIONS: &[(&str, &str, &str)] = &[
    ("person", "Person", "个人"),
    ("company", "Company", "企业"),
    ("lead", "Lead", "线索"),
    ("prospect", "Prospect", "潜在客户"),
    ("customer", "Customer", "成交客户"),
    ("churned", "Churned", "流失"),
    ("open", "Open", "进行中"),
    ("won", "Won", "赢单"),
    ("lost", "Lost", "输单"),
    ("call", "Call", "电话"),
    ("visit", "Visit", "拜访"),
    ("email", "E-mail", "邮件"),
    ("meeting", "Meeting", "会议"),
    ("note", "Note", "备注"),
    ("inbound", "Inbound", "呼入"),
    ("outbound", "Outbound", "呼出"),
    ("low", "Low", "低"),
    ("normal", "Normal", "普通"),
    ("high", "High", "高"),
    ("urgent", "Urgent", "紧急"),
    ("phone", "Phone", "电话"),
    ("web", "Web", "网页"),
    ("portal", "Portal", "客户门户"),
    ("api", "API", "API"),
];

/// A built-in field's labels, `{"en": …, "zh-CN": …}` (empty for a key without one).
pub fn field_labels(object: ObjectKey, key: &str) -> Map<String, Value> {
    // A ticket's `type` is its ticket type; elsewhere `title` of a contact is a job title.
    let special = match (object, key) {
        (ObjectKey::Contacts, "title") => Some(("Job title", "职务")),
        (ObjectKey::Tickets, "type") => Some(("Ticket type", "工单类型")),
        _ => None,
    };
    let found = special.or_else(|| {
        FIELDS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, en, zh)| (*en, *zh))
    });
    let mut out = Map::new();
    if let Some((en, zh)) = found {
        out.insert("en".into(), json!(en));
        out.insert("zh-CN".into(), json!(zh));
    }
    out
}

/// What one record of a built-in object is called, `{"en": …, "zh-CN": …}` (empty for a
/// custom object, whose names its company gave).
pub fn object_labels(object: ObjectKey) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some((_, en, zh)) = OBJECTS.iter().find(|(o, _, _)| *o == object) {
        out.insert("en".into(), json!(en));
        out.insert("zh-CN".into(), json!(zh));
    }
    out
}

/// The English label of a built-in field (its key when it has none).
pub fn field_label(object: ObjectKey, key: &str) -> String {
    field_labels(object, key)
        .get("en")
        .and_then(Value::as_str)
        .unwrap_or(key)
        .to_owned()
}

/// `{option: {"en": …, "zh-CN": …}}` for the options of a built-in select that have labels.
pub fn option_labels(options: &[String]) -> Value {
    let mut out = Map::new();
    for option in options {
        if let Some((_, en, zh)) = OPTIONS.iter().find(|(o, _, _)| o == option) {
            out.insert(option.clone(), json!({"en": en, "zh-CN": zh}));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_field_has_both_labels() {
        for object in ObjectKey::ALL {
            for b in object.builtins() {
                let labels = field_labels(*object, b.key);
                assert!(
                    labels.contains_key("en") && labels.contains_key("zh-CN"),
                    "{object}.{}",
                    b.key
                );
            }
        }
    }

    #[test]
    fn every_built_in_option_has_both_labels() {
        for object in ObjectKey::ALL {
            for b in object.builtins() {
                // Currencies are their own labels.
                if b.key == "currency" || b.key == "level" {
                    continue;
                }
                let options: Vec<String> = b.options.iter().map(|o| (*o).to_owned()).collect();
                let labels = option_labels(&options);
                for o in &options {
                    assert!(labels.get(o).is_some(), "{object}.{} option {o}", b.key);
                }
            }
        }
    }
}
