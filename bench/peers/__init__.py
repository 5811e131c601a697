"""Peers measured on the same machine: BullMQ (Node, npm) and RabbitMQ (aio-pika)."""
