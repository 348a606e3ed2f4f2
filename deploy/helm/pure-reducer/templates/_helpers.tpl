{{/*
Names and labels.
*/}}
{{- define "pure-reducer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pure-reducer.fullname" -}}
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

{{- define "pure-reducer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "pure-reducer.labels" -}}
helm.sh/chart: {{ include "pure-reducer.chart" . }}
{{ include "pure-reducer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pure-reducer
{{- end }}

{{/* Labels selecting every pod of the release (all roles). */}}
{{- define "pure-reducer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pure-reducer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Deployments. One entry per role block in values: the Kubernetes component name, the
values key and the fixed --roles list it runs. action-dedup runs inside reducer-service
because every HandleAction writes its dedup record in the same transaction as the commit.
*/}}
{{- define "pure-reducer.components" -}}
- name: reducer-service
  key: reducerService
  roles: reducer-service,action-dedup
- name: canonical-store
  key: canonicalStore
  roles: canonical-store
- name: event-bus
  key: eventBus
  roles: event-bus
- name: projection-materializer
  key: projectionMaterializer
  roles: projection-materializer
{{- end }}

{{/* Full name of one component: call with (dict "root" $ "component" "reducer-service"). */}}
{{- define "pure-reducer.componentName" -}}
{{- printf "%s-%s" (include "pure-reducer.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component's pods: call with (dict "root" $ "component" NAME). */}}
{{- define "pure-reducer.componentSelectorLabels" -}}
{{ include "pure-reducer.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "pure-reducer.componentLabels" -}}
{{ include "pure-reducer.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pure-reducer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pure-reducer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pure-reducer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secret holding the database URL: the user's existing one, or the dev Secret. */}}
{{- define "pure-reducer.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "pure-reducer.fullname" .) }}
{{- end }}
{{- end }}

{{- define "pure-reducer.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else -}}
database-url
{{- end }}
{{- end }}

{{/* Environment shared by the role containers and the migration Job. */}}
{{- define "pure-reducer.databaseEnv" -}}
- name: PURE_REDUCER_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "pure-reducer.databaseSecretName" . }}
      key: {{ include "pure-reducer.databaseSecretKey" . }}
{{- end }}

{{- define "pure-reducer.kafkaEnv" -}}
{{- with .Values.kafka.brokers }}
- name: PURE_REDUCER_KAFKA_BROKERS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.securityProtocol }}
- name: PURE_REDUCER_KAFKA_SECURITY_PROTOCOL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.saslMechanism }}
- name: PURE_REDUCER_KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.existingSecret }}
- name: PURE_REDUCER_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.existingSecret }}
      key: {{ .Values.kafka.usernameKey }}
- name: PURE_REDUCER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.existingSecret }}
      key: {{ .Values.kafka.passwordKey }}
{{- end }}
{{- end }}

{{/*
TOML rendering. Helm reads numbers in values as floats, so whole numbers are printed as
integers (reducerd's integer settings reject 3.0). Strings go through toJson: every JSON
string escape is also a valid TOML basic-string escape.
*/}}
{{- define "pure-reducer.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "pure-reducer.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{ toJson $v }}
{{- else if kindIs "bool" $v -}}
{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 $v) (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{ $v }}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "pure-reducer.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }}, {{ end }}{{ include "pure-reducer.tomlKey" $k }} = {{ include "pure-reducer.tomlValue" (get $v $k) }}{{ end -}} }
{{- else -}}
{{- fail (printf "config: a null or unsupported value (%v) cannot be written to the TOML config" $v) }}
{{- end -}}
{{- end }}

{{/* One TOML table: call with (dict "name" "reducer" "table" .Values.config.reducer). */}}
{{- define "pure-reducer.tomlTable" -}}
[{{ .name }}]
{{- range $k := keys .table | sortAlpha }}
{{- $v := get $.table $k }}
{{- if not (and (kindIs "string" $v) (eq $v "")) }}
{{ include "pure-reducer.tomlKey" $k }} = {{ include "pure-reducer.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}
