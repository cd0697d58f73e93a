// The customer's satisfaction rating of a resolved ticket, when a survey was sent.
import { Card, Rate, Typography } from "antd";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";

export function Satisfaction({ ticketId }: { ticketId: string }) {
  const { t } = useTranslation();
  const survey = useQuery({
    queryKey: ["ticket", ticketId, "satisfaction"],
    queryFn: async () => unwrap(await api.GET("/tickets/{id}/satisfaction", { params: { path: { id: ticketId } } })),
  });
  if (!survey.data?.sent) return null;
  const s = survey.data;
  return (
    <Card size="small" title={t("ticket.csat")} data-testid="csat">
      {s.rating ? (
        <>
          <Rate disabled value={s.rating} aria-label={t("ticket.csatRating", { rating: s.rating })} />
          <div>
            <Typography.Text>{t("ticket.csatRating", { rating: s.rating })}</Typography.Text>
          </div>
          {s.comment && <Typography.Paragraph style={{ marginTop: 8, whiteSpace: "pre-wrap" }}>{s.comment}</Typography.Paragraph>}
          {s.rated_at && <Typography.Text type="secondary">{dayjs(s.rated_at).format(t("format.dateTime"))}</Typography.Text>}
        </>
      ) : (
        <Typography.Text type="secondary">
          {t("ticket.csatWaiting", { sent: s.sent_at ? dayjs(s.sent_at).format(t("format.dateTime")) : "" })}
        </Typography.Text>
      )}
    </Card>
  );
}
