// A record's tags: removable chips and a small input to add one (POST/DELETE …/tags).
import { useState } from "react";
import { App, Input, Space, Tag } from "antd";
import { PlusOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";

interface Props {
  object: string;
  id: string;
  tags: string[];
  onChange: () => void;
}

export function TagEditor({ object, id, tags, onChange }: Props) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const [adding, setAdding] = useState(false);
  const [text, setText] = useState("");
  const path = { params: { path: { object, id } } };
  const act = async (call: () => Promise<unknown>) => {
    try {
      await call();
      onChange();
    } catch (e) {
      message.error(e instanceof Error ? e.message : String(e));
    }
  };
  const add = () => {
    const tag = text.trim();
    setAdding(false);
    setText("");
    if (!tag || tags.includes(tag)) return;
    void act(async () => unwrap(await api.POST("/records/{object}/{id}/tags", { ...path, body: { tags: [tag] } })));
  };
  return (
    <Space size={[4, 4]} wrap data-testid="tags">
      {tags.map((tag) => (
        <Tag
          key={tag}
          closable
          onClose={(e) => {
            e.preventDefault();
            void act(async () =>
              unwrap(await api.DELETE("/records/{object}/{id}/tags/{tag}", { params: { path: { object, id, tag } } })),
            );
          }}
        >
          {tag}
        </Tag>
      ))}
      {adding ? (
        <Input
          size="small"
          autoFocus
          style={{ width: 120 }}
          value={text}
          aria-label={t("tags.new")}
          onChange={(e) => setText(e.target.value)}
          onBlur={add}
          onPressEnter={add}
        />
      ) : (
        <Tag style={{ borderStyle: "dashed" }} icon={<PlusOutlined />}>
          <button type="button" className="crm-tag-add" onClick={() => setAdding(true)}>
            {t("tags.add")}
          </button>
        </Tag>
      )}
    </Space>
  );
}
