// The AWS SDK for JavaScript v3 (@aws-sdk/client-sqs) against the SQS edge; run by tests/sqs/test_sqs_javascript.py
// with: node sqs_client.mjs ENDPOINT ACCESS_KEY_ID SECRET PREFIX. Prints "ok" when every step held.
import assert from "node:assert/strict";
import {
  SQSClient, CreateQueueCommand, SendMessageCommand, SendMessageBatchCommand, ReceiveMessageCommand,
  DeleteMessageBatchCommand, GetQueueAttributesCommand, GetQueueUrlCommand, DeleteQueueCommand, ListQueuesCommand,
} from "@aws-sdk/client-sqs";

const [endpoint, accessKeyId, secretAccessKey, prefix] = process.argv.slice(2);
const sqs = new SQSClient({ endpoint, region: "us-east-1", credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });

const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}-js`, Attributes: { DelaySeconds: "0" } }));
assert.ok(QueueUrl.endsWith(`/${prefix}-js`), QueueUrl);
const listed = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }));
assert.deepEqual(listed.QueueUrls, [QueueUrl]);
// The SDK checks MD5OfMessageBody and MD5OfMessageAttributes (its md5 middleware) on send and receive.
const sent = await sqs.send(new SendMessageCommand({
  QueueUrl, MessageBody: "from node ✓",
  MessageAttributes: { kind: { DataType: "String", StringValue: "js" }, raw: { DataType: "Binary", BinaryValue: new Uint8Array([1, 2, 3]) } },
}));
const batch = await sqs.send(new SendMessageBatchCommand({
  QueueUrl, Entries: [{ Id: "a", MessageBody: "one" }, { Id: "b", MessageBody: "two" }],
}));
assert.equal(batch.Successful.length, 2);
const got = [];
while (got.length < 3) {
  const r = await sqs.send(new ReceiveMessageCommand({
    QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
  }));
  assert.ok(r.Messages && r.Messages.length, "messages missing");
  got.push(...r.Messages);
}
const first = got.find((m) => m.MessageId === sent.MessageId);
assert.equal(first.Body, "from node ✓");
assert.equal(first.MessageAttributes.kind.StringValue, "js");
assert.deepEqual([...first.MessageAttributes.raw.BinaryValue], [1, 2, 3]);
assert.equal(first.Attributes.ApproximateReceiveCount, "1");
const deleted = await sqs.send(new DeleteMessageBatchCommand({
  QueueUrl, Entries: got.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })),
}));
assert.equal(deleted.Successful.length, 3);
const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["All"] }));
assert.equal(attrs.Attributes.ApproximateNumberOfMessages, "0");
await sqs.send(new DeleteQueueCommand({ QueueUrl }));
try {
  await sqs.send(new GetQueueUrlCommand({ QueueName: `${prefix}-js` }));
  assert.fail("a deleted queue was found");
} catch (error) {
  assert.equal(error.name, "QueueDoesNotExist", String(error));
}
const wrong = new SQSClient({ endpoint, region: "us-east-1", credentials: { accessKeyId, secretAccessKey: secretAccessKey + "x" }, maxAttempts: 1 });
try {
  await wrong.send(new ListQueuesCommand({}));
  assert.fail("a wrong secret was accepted");
} catch (error) {
  assert.equal(error.name, "SignatureDoesNotMatch", String(error));
}
console.log("ok");
