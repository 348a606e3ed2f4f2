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

{{/*
Where Secrets are mounted in the pods. Whole Secret volumes, never subPath, so the kubelet's
updates reach the files and reducerd's reloads pick them up.
*/}}
{{- define "pure-reducer.secretsDir" -}}
/var/run/secrets/pure-reducer
{{- end }}

{{- define "pure-reducer.authEnabled" -}}
{{- if eq (toString .Values.auth.mode) "token" }}true{{ end }}
{{- end }}

{{- define "pure-reducer.tlsEnabled" -}}
{{- if .Values.tls.existingSecret }}true{{ end }}
{{- end }}

{{/* The chart makes the tokens Secret itself: token mode, no existing Secret. */}}
{{- define "pure-reducer.authGenerated" -}}
{{- if and (include "pure-reducer.authEnabled" .) (not .Values.auth.existingSecret) .Values.auth.generateTokens }}true{{ end }}
{{- end }}

{{- define "pure-reducer.authSecretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-auth" (include "pure-reducer.fullname" .) }}
{{- end }}
{{- end }}

{{- define "pure-reducer.authSecretKey" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecretKey }}
{{- else -}}
tokens.toml
{{- end }}
{{- end }}

{{- define "pure-reducer.clientCaSecretName" -}}
{{- default .Values.tls.existingSecret .Values.tls.clientCaSecret }}
{{- end }}

{{/* The Secret and key the ServiceMonitor reads its bearer token from, as YAML. */}}
{{- define "pure-reducer.scrapeTokenSecret" -}}
{{- if .Values.serviceMonitor.tokenSecret.name }}
name: {{ .Values.serviceMonitor.tokenSecret.name }}
key: {{ .Values.serviceMonitor.tokenSecret.key }}
{{- else if include "pure-reducer.authGenerated" . }}
name: {{ include "pure-reducer.authSecretName" . }}
key: metrics-token
{{- else }}
{{- fail "serviceMonitor.tokenSecret.name is required with auth.mode \"token\" and auth.existingSecret: Prometheus needs a bearer token to scrape /metrics (a Secret holding a token listed in the tokens file, role reader)" }}
{{- end }}
{{- end }}

{{/*
Checks of the auth, TLS and CA values; included by the Deployments so every render runs them.
*/}}
{{- define "pure-reducer.validateSecurity" -}}
{{- if not (has (toString .Values.auth.mode) (list "none" "token")) }}
{{- fail (printf "auth.mode must be \"token\" or \"none\" (got %v)" .Values.auth.mode) }}
{{- end }}
{{- if and (include "pure-reducer.authEnabled" .) (not .Values.auth.existingSecret) (not .Values.auth.generateTokens) }}
{{- fail "auth.mode is \"token\" but no tokens Secret is given: set auth.existingSecret to a Secret whose key auth.existingSecretKey (tokens.toml) holds the tokens file, or auth.generateTokens=true to let the chart create one" }}
{{- end }}
{{- if and .Values.auth.existingSecret (not .Values.auth.existingSecretKey) }}
{{- fail "auth.existingSecretKey must name the key of auth.existingSecret that holds the tokens file" }}
{{- end }}
{{- if and .Values.tls.requireClientCertificates (not .Values.tls.existingSecret) }}
{{- fail "tls.requireClientCertificates needs TLS: set tls.existingSecret to a Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (include "pure-reducer.authEnabled" .) }}
{{- $_ := include "pure-reducer.scrapeTokenSecret" . }}
{{- end }}
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
{{- if .Values.kafka.caSecret }}
- name: PURE_REDUCER_KAFKA_SSL_CA_FILE
  value: {{ include "pure-reducer.secretsDir" . }}/kafka/ca.crt
{{- end }}
{{- end }}

{{/* Secret volumes of the role pods (and, for the database CA, the migration Job). */}}
{{- define "pure-reducer.databaseCaVolume" -}}
{{- if .Values.database.caSecret }}
- name: database-ca
  secret:
    secretName: {{ .Values.database.caSecret }}
    items:
      - key: {{ .Values.database.caSecretKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "pure-reducer.databaseCaMount" -}}
{{- if .Values.database.caSecret }}
- name: database-ca
  mountPath: {{ include "pure-reducer.secretsDir" . }}/database
  readOnly: true
{{- end }}
{{- end }}

{{- define "pure-reducer.securityVolumes" -}}
{{- include "pure-reducer.databaseCaVolume" . }}
{{- if include "pure-reducer.authEnabled" . }}
# Only the tokens file: the generated Secret also holds the tokens themselves.
- name: auth-tokens
  secret:
    secretName: {{ include "pure-reducer.authSecretName" . }}
    items:
      - key: {{ include "pure-reducer.authSecretKey" . }}
        path: tokens.toml
{{- end }}
{{- if include "pure-reducer.tlsEnabled" . }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- if .Values.tls.requireClientCertificates }}
- name: tls-client-ca
  secret:
    secretName: {{ include "pure-reducer.clientCaSecretName" . }}
    items:
      - key: {{ .Values.tls.clientCaSecretKey }}
        path: ca.crt
{{- end }}
{{- end }}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caSecret }}
    items:
      - key: {{ .Values.kafka.caSecretKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "pure-reducer.securityMounts" -}}
{{- include "pure-reducer.databaseCaMount" . }}
{{- if include "pure-reducer.authEnabled" . }}
- name: auth-tokens
  mountPath: {{ include "pure-reducer.secretsDir" . }}/auth
  readOnly: true
{{- end }}
{{- if include "pure-reducer.tlsEnabled" . }}
- name: tls
  mountPath: {{ include "pure-reducer.secretsDir" . }}/tls
  readOnly: true
{{- if .Values.tls.requireClientCertificates }}
- name: tls-client-ca
  mountPath: {{ include "pure-reducer.secretsDir" . }}/tls-client-ca
  readOnly: true
{{- end }}
{{- end }}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: {{ include "pure-reducer.secretsDir" . }}/kafka
  readOnly: true
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
