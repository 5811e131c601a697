// Must NOT type-check: test_generated_client.py type-checks this file to prove that the check can fail. Each
// line marked "error:" uses a name the server's document does not have, and must be reported by tsc.
import createClient from "openapi-fetch";
import type { paths } from "broker-openapi";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:9" });
const { data } = await client.POST("/v1/queue/publish", { body: { queue: "x", paylod: 1 } }); // error: paylod
console.log(data?.messageId); // error: messageId
