// Home: my open tasks due today and overdue, with "done" to tick one off.
import { App, Button, List, Tag, Typography } from "antd";
import { CheckOutlined } from "@ant-design/icons";
import { Link } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";
import { HomeCard } from "./HomeCard";
import { listRecords } from "./listRecords";
import { dueTasksQuery, splitByDue } from "./home";

interface Task {
  id: string;
  title: string;
  due_at?: string | null;
}

export function MyTasks({ userId, now }: { userId: string; now: number }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const day = dayjs(now).format("YYYY-MM-DD");
  const tasks = useQuery({
    queryKey: ["records", "tasks", "home", userId, day],
    queryFn: () => listRecords<Task>("tasks", dueTasksQuery(userId, new Date(now))),
  });
  const done = useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.PATCH("/records/{object}/{id}", { params: { path: { object: "tasks", id } }, body: { done_at: new Date().toISOString() } })),
    onSuccess: () => {
      message.success(t("home.taskDone"));
      void queries.invalidateQueries({ queryKey: ["records", "tasks"] });
    },
    onError: (e) => message.error(e.message),
  });
  const { overdue, today } = splitByDue(tasks.data ?? [], new Date(now));
  const row = (task: Task, late: boolean) => (
    <List.Item
      actions={[
        <Button key="done" size="small" icon={<CheckOutlined />} loading={done.isPending && done.variables === task.id} onClick={() => done.mutate(task.id)} aria-label={t("home.markDone", { title: task.title })} />,
      ]}
    >
      <List.Item.Meta
        title={<Link to={`/records/tasks/${task.id}`}>{task.title}</Link>}
        description={
          late ? (
            <Tag color="red">{t("home.overdueSince", { time: dayjs(task.due_at).format(t("format.dateTime")) })}</Tag>
          ) : (
            <Typography.Text type="secondary">{t("home.dueAt", { time: dayjs(task.due_at).format("HH:mm") })}</Typography.Text>
          )
        }
      />
    </List.Item>
  );
  return (
    <HomeCard
      title={t("home.myTasks")}
      more="/records/tasks"
      testId="home-tasks"
      loading={tasks.isLoading}
      error={tasks.error}
      retry={() => void tasks.refetch()}
      empty={overdue.length + today.length === 0 ? t("home.noTasks") : null}
    >
      <List size="small" dataSource={[...overdue.map((x) => ({ x, late: true })), ...today.map((x) => ({ x, late: false }))]} renderItem={({ x, late }) => row(x, late)} />
    </HomeCard>
  );
}
