// A partner's signed call to orderhub, written against the types
// openapi-typescript generates from the partner edition
// (scripts/check-typescript.sh type-checks it with tsc --noEmit; it is never
// run). A contract change that breaks code like this breaks make test.
import { createSign, createVerify } from "node:crypto";
import type { components, paths } from "./orderhub";

type AuditRequest = components["schemas"]["NotifyDeliveryAuditResultRequest"];
type AuditAnswer =
  paths["/v1/delivery/notifyDeliveryAuditResult"]["post"]["responses"][200]["content"]["application/json"];
type Code = AuditAnswer["result"]["resultCode"];

const path = "/v1/delivery/notifyDeliveryAuditResult";

// sign makes the Signature header of a request: RSA256 over
// "POST <path>\n<Client-Id>.<Request-Time>.<body>", base64, URL-escaped.
function sign(privateKeyPem: string, clientId: string, requestTime: string, body: string): string {
  const signer = createSign("RSA-SHA256");
  signer.update(`POST ${path}\n${clientId}.${requestTime}.${body}`);
  const value = encodeURIComponent(signer.sign(privateKeyPem, "base64"));
  return `algorithm=RSA256, keyVersion=1, signature=${value}`;
}

// verify checks orderhub's signature of an answer over the exact bytes.
function verify(publicKeyPem: string, clientId: string, responseTime: string, body: string, header: string): boolean {
  const value = /signature=([^,]+)$/.exec(header)?.[1];
  if (value === undefined) return false;
  const verifier = createVerify("RSA-SHA256");
  verifier.update(`POST ${path}\n${clientId}.${responseTime}.${body}`);
  return verifier.verify(publicKeyPem, decodeURIComponent(value), "base64");
}

// notify sends one audit result and says what to do with the answer.
export async function notify(baseUrl: string, clientId: string, privateKeyPem: string, orderhubKeyPem: string,
  audit: AuditRequest): Promise<"done" | "retry" | "fix"> {
  const body = JSON.stringify(audit);
  const requestTime = new Date().toISOString();
  const res = await fetch(baseUrl + path, {
    method: "POST",
    headers: {
      "Content-Type": "application/json; charset=UTF-8",
      "Client-Id": clientId,
      "Request-Time": requestTime,
      Signature: sign(privateKeyPem, clientId, requestTime, body),
    },
    body,
  });
  const text = await res.text();
  const signature = res.headers.get("Signature");
  if (signature === null || !verify(orderhubKeyPem, clientId, res.headers.get("Response-Time") ?? "", text, signature)) {
    return "retry"; // not orderhub's answer, or lost on the way
  }
  const answer = JSON.parse(text) as AuditAnswer;
  const code: Code = answer.result.resultCode;
  switch (answer.result.resultStatus) {
    case "S":
      return "done";
    case "U":
      return "retry";
    case "F":
      // Over the rate limit nothing was done: the same request, later.
      return code === "REQUEST_TRAFFIC_EXCEED_LIMIT" ? "retry" : "fix";
  }
}

const example: AuditRequest = {
  requestId: "2023112013143211",
  tradeId: "T2023112000001",
  deliveryBatchId: "B1",
  deliveryAuditStatus: "ACCEPT",
};
export { example };

// A notifyOrderChange body as a POS builds it: the types hold the amount's
// shape (minor units as a string) and the statuses this API sets.
type ChangeRequest = components["schemas"]["NotifyOrderChangeRequest"];
export function readyWithRefund(requestOrderId: string, refundedMinorUnits: string): ChangeRequest {
  return {
    requestId: `${requestOrderId}_${Date.now()}`,
    requestOrderId,
    orderStatus: "READY",
    refundAmount: { currency: "SGD", value: refundedMinorUnits },
  };
}
