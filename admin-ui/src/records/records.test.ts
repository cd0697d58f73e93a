import { describe, expect, it } from "vitest";
import dayjs from "dayjs";
import { ApiProblem } from "../api/client";
import { apiQuery, filterableFields, isComplete, operatorsFor, queryName, readFilters, readSort, sortParam, writeFilters } from "./filters";
import { controlOf, duplicateOf, expandable, fieldMessages, fieldPath, formFields, initialValues, recordTitle, requestBody, valueOf } from "./form";
import { cellText, chosenColumns, fieldLabel, listColumns, moneyText, parseStoredColumns, type CellFormat, type FieldMeta, type ObjectMeta } from "./list";
import { changesOf } from "./HistoryList";
import { pointingTo } from "./RelatedList";
import { timelineText } from "./CustomerTimeline";

const field = (key: string, type: string, position: number, extra: Partial<FieldMeta> = {}): FieldMeta => ({
  key, type, position, builtin: true, label: key, labels: { "zh-CN": `字段${key}` }, required: false, unique: false,
  indexed: false, options: [], option_labels: {}, searchable: false, sensitive: false, encrypted: false,
  portal_editable: false, ...extra,
});
const customers: ObjectMeta = {
  key: "customers", builtin: true, name: "customer", name_plural: "customers", labels: { "zh-CN": "客户" },
  fields: [
    field("notes", "long_text", 0),
    field("level", "select", 2, { options: ["a", "b"] }),
    field("name", "text", 1, { required: true }),
    field("vip", "boolean", 3),
    field("tags", "tags", 4),
    field("phone", "phone", 5, { sensitive: true }),
    field("score", "decimal", 6, { builtin: false }),
    field("signed_on", "date", 7, { builtin: false }),
    field("total", "rollup", 8, { builtin: false }),
  ],
};
const policies: ObjectMeta = {
  key: "policies", builtin: false, name: "policy", name_plural: "policies", labels: {},
  fields: [field("number", "text", 0, { builtin: false }), field("holder", "relation", 1, { builtin: false, target: "customers" })],
};
const zh: CellFormat = { yesNo: ["是", "否"], dateTime: "YYYY-MM-DD HH:mm", date: "YYYY-MM-DD", locale: "zh-CN" };

describe("list columns", () => {
  it("are the fields by position, leaving out what a cell cannot show", () => {
    expect(listColumns(customers, 3).map((f) => f.key)).toEqual(["name", "level", "vip"]);
  });
  it("follow the user's remembered choice, in its order, ignoring unknown fields", () => {
    expect(chosenColumns(customers, ["vip", "gone", "name"]).map((f) => f.key)).toEqual(["vip", "name"]);
    expect(chosenColumns(customers, ["gone"], 2).map((f) => f.key)).toEqual(["name", "level"]);
    expect(chosenColumns(customers, null, 2).map((f) => f.key)).toEqual(["name", "level"]);
  });
  it("read a stored choice only when it is a list of keys", () => {
    expect(parseStoredColumns('["a","b"]')).toEqual(["a", "b"]);
    expect(parseStoredColumns("{bad")).toBeNull();
    expect(parseStoredColumns("[1]")).toBeNull();
    expect(parseStoredColumns(null)).toBeNull();
  });
  it("label in the user's language, falling back on the app's, then the field's own", () => {
    const level = customers.fields[1]!;
    expect(fieldLabel(level, "zh-CN")).toBe("字段level");
    expect(fieldLabel(level, "en", () => "Level")).toBe("Level");
    expect(fieldLabel({ ...level, builtin: false }, "en", () => "Level")).toBe("level");
  });
});

describe("cells", () => {
  it("read values in the user's language", () => {
    const kind = field("kind", "select", 0, { option_labels: { company: { "zh-CN": "企业" } } });
    expect(cellText("company", kind, zh)).toBe("企业");
    expect(cellText("company", kind, { ...zh, locale: "en" })).toBe("company");
    expect(cellText(true, customers.fields[3]!, zh)).toBe("是");
    expect(cellText(null, customers.fields[3]!, zh)).toBe("");
    expect(cellText({ id: "x", name: "张伟" }, field("c", "relation", 0), zh)).toBe("张伟");
    expect(cellText("2026-12-02", field("d", "date", 0), { ...zh, date: "MMM D, YYYY", locale: "en" })).toBe("Dec 2, 2026");
    expect(cellText({ province: "上海市", city: "上海市", district: "浦东新区" }, field("a", "address", 0), zh)).toBe("上海市 上海市 浦东新区");
  });
  it("write money with ¥, thousands separators and two decimals", () => {
    expect(moneyText(1234.5, "zh-CN")).toBe("¥1,234.50");
    expect(cellText(1234567, field("m", "currency", 0), zh)).toBe("¥1,234,567.00");
  });
});

describe("filters", () => {
  it("offer the operators the API has for each type", () => {
    expect(operatorsFor(field("n", "text", 0))[0]).toBe("contains");
    expect(operatorsFor(field("n", "integer", 0))).toContain("gte");
    expect(operatorsFor(field("n", "integer", 0))).not.toContain("contains");
    expect(operatorsFor(field("n", "multi_select", 0))).toEqual(["contains", "in", "is_null"]);
    expect(operatorsFor(field("n", "text", 0, { encrypted: true }))).toEqual(["eq", "ne", "in", "is_null"]);
    expect(operatorsFor(field("n", "address", 0))).toEqual([]);
  });
  it("leave out masked fields unless the user sees them", () => {
    expect(filterableFields(customers.fields, false).map((f) => f.key)).not.toContain("phone");
    expect(filterableFields(customers.fields, true).map((f) => f.key)).toContain("phone");
  });
  it("name a built-in object's custom fields custom.<key>", () => {
    expect(queryName(customers.fields[6]!, true)).toBe("custom.score");
    expect(queryName(customers.fields[2]!, true)).toBe("name");
    expect(queryName(policies.fields[0]!, false)).toBe("number");
  });
  it("live in the address and go to the API as filter[field][op]", () => {
    const page = writeFilters(new URLSearchParams("q=张&cursor=c1"), [
      { field: "name", op: "contains", value: "科技" },
      { field: "custom.score", op: "gte", value: "90" },
      { field: "phone", op: "is_null", value: "" },
    ]);
    expect(page.get("cursor")).toBeNull();
    expect(readFilters(page)).toEqual([
      { field: "name", op: "contains", value: "科技" },
      { field: "custom.score", op: "gte", value: "90" },
      { field: "phone", op: "is_null", value: "true" },
    ]);
    page.set("sort", "-custom.score");
    expect(decodeURIComponent(apiQuery(page, { cursor: "c2", limit: 50 }))).toBe(
      "q=张&sort=-custom.score&filter[name][contains]=科技&filter[custom.score][gte]=90&filter[phone][is_null]=true&cursor=c2&limit=50",
    );
  });
  it("ignore unknown operators and incomplete clauses", () => {
    expect(readFilters(new URLSearchParams("filter[name][like]=x&filter[name]=y"))).toEqual([]);
    expect(apiQuery(new URLSearchParams("filter[name][eq]=&q=%20"))).toBe("");
    expect(isComplete({ field: "x", op: "is_null", value: "maybe" })).toBe(false);
  });
  it("sort ascending or descending by one field", () => {
    expect(readSort("-name")).toEqual({ field: "name", desc: true });
    expect(sortParam({ field: "custom.score", desc: false })).toBe("custom.score");
    expect(sortParam(null)).toBeNull();
  });
});

describe("the record form", () => {
  it("gives every type its control and leaves out roll-ups and tags", () => {
    expect(controlOf(field("m", "currency", 0))).toBe("money");
    expect(controlOf(field("m", "multi_select", 0))).toBe("multi_select");
    expect(controlOf(field("m", "rollup", 0))).toBeNull();
    expect(controlOf(field("team_id", "relation", 0))).toBeNull();
    expect(controlOf(field("holder", "relation", 0, { target: "customers" }))).toBe("relation");
    expect(formFields(customers).map((f) => f.key)).toEqual(["notes", "name", "level", "vip", "phone", "score", "signed_on"]);
  });
  it("expands only relations that point to a record object", () => {
    const withTeam = [...policies.fields, field("team_id", "relation", 2)];
    expect(expandable(withTeam, policies)).toEqual(["holder"]);
    expect(expandable([field("referrer", "relation", 0, { builtin: false, target: "customers" })], customers)).toEqual(["custom.referrer"]);
  });
  it("puts a built-in object's custom fields under custom, a custom object's at the top", () => {
    expect(fieldPath(customers.fields[6]!, customers)).toEqual(["custom", "score"]);
    expect(fieldPath(policies.fields[0]!, policies)).toEqual(["number"]);
    expect(valueOf({ custom: { score: 9 } }, customers.fields[6]!, customers)).toBe(9);
  });
  it("starts from the record, dates as dates", () => {
    const values = initialValues(customers, { name: "张三科技", custom: { signed_on: "2026-12-02", score: 9 } });
    expect(values.name).toBe("张三科技");
    const custom = values.custom as Record<string, unknown>;
    expect(dayjs.isDayjs(custom.signed_on)).toBe(true);
    expect(custom.score).toBe(9);
  });
  it("sends every filled field on create", () => {
    const body = requestBody(customers, { name: " 张三科技 ", notes: "", level: undefined, custom: { signed_on: dayjs("2026-12-02"), score: 90.5 } }, null);
    expect(body).toEqual({ name: "张三科技", custom: { signed_on: "2026-12-02", score: 90.5 } });
  });
  it("sends only what changed on edit, and clears emptied fields", () => {
    const before = { name: "张三科技", notes: "旧", level: "a", custom: { score: 9, signed_on: "2026-12-02" } };
    const values = { ...initialValues(customers, before), notes: "", level: "b" };
    expect(requestBody(customers, values, before)).toEqual({ notes: null, level: "b" });
  });
  it("keeps an empty address an empty object, never null", () => {
    const withAddress: ObjectMeta = { ...customers, fields: [...customers.fields, field("address", "address", 9)] };
    const before = { name: "张三科技", address: {} };
    expect(requestBody(withAddress, initialValues(withAddress, before), before)).toEqual({});
    expect(requestBody(withAddress, { ...initialValues(withAddress, before), address: { city: " 上海 ", street: "" } }, before)).toEqual({ address: { city: "上海" } });
    expect(requestBody(withAddress, { name: "x", address: {} }, null)).toEqual({ name: "x" });
  });
  it("shows the API's 422 messages under the fields they name", () => {
    const problem = new ApiProblem({
      type: "about:blank", title: "Unprocessable", status: 422, detail: "2 fields are invalid", code: "validation.failed",
      errors: [
        { field: "custom.score", code: "invalid_type", message: "expects a number" },
        { field: "name", code: "required", message: "is required" },
        { field: "owner", code: "x", message: "not here" },
      ],
    });
    const out = fieldMessages(problem, customers);
    expect(out.fields).toEqual([
      { name: ["custom", "score"], errors: ["expects a number"] },
      { name: ["name"], errors: ["is required"] },
    ]);
    expect(out.summary).toBe("2 fields are invalid · owner: not here");
    expect(fieldMessages(new TypeError("Failed to fetch"), customers).summary).toBe("Failed to fetch");
  });
  it("finds the existing record of a 409 duplicate", () => {
    const dup = new ApiProblem({
      type: "about:blank", title: "Conflict", status: 409, detail: "exists", code: "customer.duplicate", existing_id: "0190-1",
    });
    expect(duplicateOf(dup)).toBe("0190-1");
    expect(duplicateOf(new Error("x"))).toBeNull();
  });
  it("names a record by its name, subject, title or number", () => {
    expect(recordTitle({ id: "1", subject: "报修" })).toBe("报修");
    expect(recordTitle({ id: "1", number: "T-000123" })).toBe("T-000123");
    expect(recordTitle({ id: "1" })).toBe("1");
  });
});

describe("the detail page", () => {
  it("finds the objects pointing to a record", () => {
    expect(pointingTo([customers, policies], "customers").map((r) => `${r.child.key}.${r.via.key}`)).toEqual(["policies.holder"]);
  });
  it("reads history changes and timeline entries", () => {
    expect(changesOf({ name: { before: "a", after: "b" } })).toEqual([["name", { before: "a", after: "b" }]]);
    expect(changesOf(null)).toEqual([]);
    expect(timelineText({ kind: "ticket", data: { number: "T-000123", subject: "报修" } })).toBe("T-000123 报修");
    expect(timelineText({ kind: "stage_change", data: { name: "大单", from: "lead", to: "won" } })).toBe("大单: lead → won");
  });
});
