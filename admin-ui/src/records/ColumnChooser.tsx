// The column chooser: which fields the list shows, remembered in this browser per object.
import { useState } from "react";
import { Button, Checkbox, Flex, Popover } from "antd";
import { SettingOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { chosenColumns, columnsStorageKey, parseStoredColumns, showableFields, type FieldMeta, type ObjectMeta } from "./list";

function read(object: string): string[] | null {
  try {
    return parseStoredColumns(localStorage.getItem(columnsStorageKey(object)));
  } catch {
    return null;
  }
}

function write(object: string, keys: string[] | null): void {
  try {
    if (keys) localStorage.setItem(columnsStorageKey(object), JSON.stringify(keys));
    else localStorage.removeItem(columnsStorageKey(object));
  } catch {
    // Private mode: the choice lasts until the page is left.
  }
}

/** The object's columns and a setter that remembers the choice. */
export function useColumns(object: ObjectMeta | undefined) {
  const [, rerender] = useState(0);
  const stored = object ? read(object.key) : null;
  const columns = object ? chosenColumns(object, stored) : [];
  const set = (keys: string[] | null) => {
    if (!object) return;
    write(object.key, keys);
    rerender((n) => n + 1);
  };
  return { columns, set };
}

interface Props {
  object: ObjectMeta;
  columns: FieldMeta[];
  label: (f: FieldMeta) => string;
  onChange: (keys: string[] | null) => void;
}

export function ColumnChooser({ object, columns, label, onChange }: Props) {
  const { t } = useTranslation();
  const all = showableFields(object);
  const chosen = columns.map((c) => c.key);
  const content = (
    <Flex vertical gap={8} style={{ maxHeight: 360, overflowY: "auto", minWidth: 180 }}>
      <Checkbox.Group
        value={chosen}
        onChange={(keys) => {
          // Keep the fields' own order, so a choice reads like the form.
          const set = new Set(keys.map(String));
          const next = all.filter((f) => set.has(f.key)).map((f) => f.key);
          if (next.length > 0) onChange(next);
        }}
      >
        <Flex vertical gap={4}>
          {all.map((f) => (
            <Checkbox key={f.key} value={f.key}>
              {label(f)}
            </Checkbox>
          ))}
        </Flex>
      </Checkbox.Group>
      <Button size="small" onClick={() => onChange(null)}>
        {t("columns.reset")}
      </Button>
    </Flex>
  );
  return (
    <Popover trigger="click" placement="bottomRight" title={t("columns.title")} content={content}>
      <Button icon={<SettingOutlined />} aria-label={t("columns.title")} data-testid="column-chooser">
        {t("columns.button")}
      </Button>
    </Popover>
  );
}
