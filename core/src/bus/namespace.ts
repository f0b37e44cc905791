import type { Bus, BusConsumer, BusProducer, ConsumerOptions, DeliveredBatch, PartitionOffset, TopicSpec } from './types.js';

/**
 * Runs a whole Afterglow deployment inside a namespace of a shared Kafka cluster (staging next to
 * production, or each test run on its own): every topic and consumer group gets the prefix on the
 * wire and loses it on the way back, so roles keep using the contract's plain topic names.
 */
export class NamespacedBus implements Bus {
  readonly kind: Bus['kind'];
  readonly replayable: boolean;

  constructor(
    private readonly inner: Bus,
    private readonly namespace: string,
  ) {
    this.kind = inner.kind;
    this.replayable = inner.replayable;
  }

  private wire(topic: string): string {
    return `${this.namespace}.${topic}`;
  }

  private local(topic: string): string {
    return topic.startsWith(`${this.namespace}.`) ? topic.slice(this.namespace.length + 1) : topic;
  }

  private localOffsets(offsets: PartitionOffset[]): PartitionOffset[] {
    return offsets.map((o) => ({ ...o, topic: this.local(o.topic) }));
  }

  ensureTopics(specs: TopicSpec[]): Promise<void> {
    return this.inner.ensureTopics(specs.map((s) => ({ ...s, topic: this.wire(s.topic) })));
  }

  async producer(): Promise<BusProducer> {
    const inner = await this.inner.producer();
    return {
      send: (topic, records) => inner.send(this.wire(topic), records),
      close: () => inner.close(),
    };
  }

  consumer(options: ConsumerOptions): BusConsumer {
    const { onAssign, startAt } = options;
    const inner = this.inner.consumer({
      ...options,
      groupId: this.wire(options.groupId),
      topics: options.topics.map((t) => this.wire(t)),
      ...(startAt ? { startAt: startAt.map((o) => ({ ...o, topic: this.wire(o.topic) })) } : {}),
      ...(onAssign ? { onAssign: (assigned) => onAssign(assigned.map((a) => ({ ...a, topic: this.local(a.topic) }))) } : {}),
    });
    return {
      run: (handler) =>
        inner.run((batch: DeliveredBatch) =>
          handler({
            ...batch,
            topic: this.local(batch.topic),
            records: batch.records.map((r) => ({ ...r, topic: this.local(r.topic) })),
          }),
        ),
      commit: (offsets) => inner.commit(offsets.map((o) => ({ ...o, topic: this.wire(o.topic) }))),
      stop: () => inner.stop(),
    };
  }

  async committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
    return this.localOffsets(await this.inner.committedOffsets(this.wire(groupId), this.wire(topic)));
  }

  async endOffsets(topic: string): Promise<PartitionOffset[]> {
    return this.localOffsets(await this.inner.endOffsets(this.wire(topic)));
  }

  async offsetsForTime(topic: string, timestamp: number): Promise<PartitionOffset[]> {
    return this.localOffsets(await this.inner.offsetsForTime(this.wire(topic), timestamp));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
