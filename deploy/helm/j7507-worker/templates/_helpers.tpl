{{/* Names: 63 characters at most, the DNS label limit of Kubernetes object names. */}}
{{- define "j7507-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "j7507-worker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "j7507-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels never change after install: a Deployment's selector is immutable. */}}
{{- define "j7507-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "j7507-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "j7507-worker.labels" -}}
helm.sh/chart: {{ include "j7507-worker.chart" . }}
{{ include "j7507-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: claim-worker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "j7507-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "j7507-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "j7507-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* KAFKA_OPTIONS: the options map as "key=value,key=value", keys sorted so renders are stable. */}}
{{- define "j7507-worker.kafkaOptions" -}}
{{- $pairs := list }}
{{- range $key := keys .Values.kafka.options | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%v" $key (get $.Values.kafka.options $key)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "j7507-worker.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "j7507-worker.tlsEnabled" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* Client certificate files are mounted only when both halves of the key pair are named. */}}
{{- define "j7507-worker.tlsClientCert" -}}
{{- if and .Values.kafka.tls.existingSecret .Values.kafka.tls.certKey .Values.kafka.tls.keyKey }}true{{ end }}
{{- end }}

{{/* Fail the render early on combinations the worker would reject at start. */}}
{{- define "j7507-worker.validate" -}}
{{- if include "j7507-worker.saslEnabled" . }}
{{- if not .Values.kafka.sasl.mechanism }}
{{- fail "kafka.sasl.mechanism is required when kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- if not .Values.kafka.sasl.existingSecret }}
{{- fail "kafka.sasl.existingSecret is required when kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.tls.existingSecret (not (include "j7507-worker.tlsEnabled" .)) }}
{{- fail "kafka.tls.existingSecret is set but kafka.securityProtocol is not SSL or SASL_SSL" }}
{{- end }}
{{- if and .Values.kafka.tls.existingSecret (not (or .Values.kafka.tls.caKey (include "j7507-worker.tlsClientCert" .))) }}
{{- fail "kafka.tls.existingSecret is set but names no caKey and no certKey/keyKey pair" }}
{{- end }}
{{- if ne (empty .Values.kafka.tls.certKey) (empty .Values.kafka.tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey must be set together" }}
{{- end }}
{{- if and (not .Values.keda.enabled) (gt (int .Values.replicaCount) (int .Values.kafka.partitions)) }}
{{- fail "replicaCount is larger than kafka.partitions: the extra consumers would sit idle" }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.kafka.partitions) }}
{{- fail "keda.minReplicaCount is larger than kafka.partitions (the maxReplicaCount)" }}
{{- end }}
{{- end }}

{{/* KEDA's kafka scaler names SASL mechanisms differently from Kafka clients. */}}
{{- define "j7507-worker.kedaSasl" -}}
{{- $mechanisms := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" }}
{{- get $mechanisms .Values.kafka.sasl.mechanism }}
{{- end }}

{{/* KEDA needs credentials whenever the brokers ask for SASL or hold a private CA. */}}
{{- define "j7507-worker.kedaNeedsAuth" -}}
{{- if or (include "j7507-worker.saslEnabled" .) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}
