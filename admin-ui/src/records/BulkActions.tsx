// Bulk actions on the selected rows: assign an owner, add a tag, delete (after a confirmation
// that names the count). The API changes one record per request; failures are counted and
// shown, never swallowed.
import { useState } from "react";
import { App, Button, Flex, Input, Modal, Typography } from "antd";
import { DeleteOutlined, TagOutlined, UserSwitchOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, done, unwrap } from "../api/client";
import { UserPicker } from "./pickers";
import type { ObjectMeta } from "./list";

interface Props {
  object: ObjectMeta;
  title: string;
  ids: string[];
  onDone: () => void;
}

type Action = "owner" | "tag" | null;

/** Runs `one` on every id, three at a time; resolves to the failures' messages. */
async function eachOf(ids: string[], one: (id: string) => Promise<unknown>): Promise<string[]> {
  const failures: string[] = [];
  for (let i = 0; i < ids.length; i += 3) {
    const batch = await Promise.allSettled(ids.slice(i, i + 3).map(one));
    for (const r of batch) if (r.status === "rejected") failures.push(r.reason instanceof Error ? r.reason.message : String(r.reason));
  }
  return failures;
}

export function BulkActions({ object, title, ids, onDone }: Props) {
  const { t } = useTranslation();
  const { message, modal } = App.useApp();
  const [action, setAction] = useState<Action>(null);
  const [owner, setOwner] = useState<string | null>(null);
  const [tag, setTag] = useState("");
  const [busy, setBusy] = useState(false);
  const hasOwner = object.fields.some((f) => f.key === "owner_id");
  const hasTags = object.fields.some((f) => f.type === "tags");
  const path = (id: string) => ({ params: { path: { object: object.key, id } } });

  const run = async (one: (id: string) => Promise<unknown>) => {
    setBusy(true);
    const failures = await eachOf(ids, one);
    setBusy(false);
    setAction(null);
    if (failures.length === 0) message.success(t("bulk.done", { count: ids.length }));
    else message.error(t("bulk.failed", { count: failures.length, detail: failures[0] }));
    onDone();
  };
  const confirmDelete = () =>
    modal.confirm({
      title: t("bulk.deleteTitle", { count: ids.length, object: title }),
      content: t("bulk.deleteBody"),
      okText: t("bulk.delete"),
      okButtonProps: { danger: true },
      cancelText: t("common.cancel"),
      onOk: () => run(async (id) => done(await api.DELETE("/records/{object}/{id}", path(id)))),
    });

  return (
    <Flex align="center" gap={8} wrap="wrap" className="crm-bulk" data-testid="bulk-bar">
      <Typography.Text strong>{t("bulk.selected", { count: ids.length })}</Typography.Text>
      {hasOwner && (
        <Button icon={<UserSwitchOutlined />} onClick={() => setAction("owner")}>
          {t("bulk.assign")}
        </Button>
      )}
      {hasTags && (
        <Button icon={<TagOutlined />} onClick={() => setAction("tag")}>
          {t("bulk.addTag")}
        </Button>
      )}
      <Button danger icon={<DeleteOutlined />} onClick={confirmDelete} data-testid="bulk-delete">
        {t("bulk.delete")}
      </Button>
      <Modal
        open={action === "owner"}
        title={t("bulk.assignTitle", { count: ids.length })}
        okText={t("common.save")}
        cancelText={t("common.cancel")}
        okButtonProps={{ disabled: !owner, loading: busy }}
        onCancel={() => setAction(null)}
        onOk={() =>
          run(async (id) => unwrap(await api.PATCH("/records/{object}/{id}", { ...path(id), body: { owner_id: owner } })))
        }
      >
        <UserPicker value={owner} onChange={setOwner} style={{ width: "100%" }} aria-label={t("fields.owner_id")} />
      </Modal>
      <Modal
        open={action === "tag"}
        title={t("bulk.addTagTitle", { count: ids.length })}
        okText={t("common.save")}
        cancelText={t("common.cancel")}
        okButtonProps={{ disabled: !tag.trim(), loading: busy }}
        onCancel={() => setAction(null)}
        onOk={() =>
          run(async (id) =>
            unwrap(await api.POST("/records/{object}/{id}/tags", { ...path(id), body: { tags: [tag.trim()] } })),
          )
        }
      >
        <Input value={tag} onChange={(e) => setTag(e.target.value)} aria-label={t("bulk.tag")} placeholder={t("bulk.tag")} />
      </Modal>
    </Flex>
  );
}
