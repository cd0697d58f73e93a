// One page of any object's records for a query string built by home.ts.
import { api, unwrap } from "../api/client";

export async function listRecords<T>(object: string, query: string): Promise<T[]> {
  const page = unwrap(await api.GET("/records/{object}", { params: { path: { object } }, querySerializer: () => query }));
  return page.items as T[];
}
