// A list at phone width: one card per record with its title and the 3 key fields below it.
import type { ReactNode } from "react";
import { Card, Flex, Skeleton, Typography } from "antd";
import { Link } from "react-router-dom";
import { FieldValue } from "./FieldValue";
import { recordTitle, valueOf } from "./form";
import { listColumns, type FieldMeta, type ObjectMeta } from "./list";

type Row = Record<string, unknown>;

interface Props {
  object: ObjectMeta;
  rows: Row[];
  loading: boolean;
  empty: ReactNode;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
}

const TITLE_KEYS = new Set(["name", "subject", "title"]);

export function RecordCards({ object, rows, loading, empty, label, option }: Props) {
  if (loading) return <Skeleton active />;
  if (rows.length === 0) return <>{empty}</>;
  const key = listColumns(object, 6)
    .filter((f) => !TITLE_KEYS.has(f.key))
    .slice(0, 3);
  return (
    <Flex vertical gap={8} data-testid="record-cards">
      {rows.map((row) => (
        <Link key={String(row.id)} to={`/records/${object.key}/${String(row.id)}`} className="crm-card-link">
          <Card size="small" hoverable>
            <Typography.Text strong>{recordTitle(row)}</Typography.Text>
            {key.map((f) => (
              <Flex key={f.key} justify="space-between" gap={8} className="crm-card-row">
                <Typography.Text type="secondary">{label(f)}</Typography.Text>
                <FieldValue field={f} value={valueOf(row, f, object)} optionLabel={option} plain />
              </Flex>
            ))}
          </Card>
        </Link>
      ))}
    </Flex>
  );
}
