{{/*
Pieces shared by the Deployments, the migrations Job and the test pod.
*/}}

{{/*
Environment variables holding credentials, all read from the Secret.
Call with (dict "root" $ "keys" (list "identityManager" ...)): the database
URLs of those services are included.
*/}}
{{- define "spid-idp.secretEnv" -}}
{{- $root := .root -}}
{{- $secret := include "spid-idp.secretName" $root -}}
{{- $services := include "spid-idp.services" $root | fromJson -}}
{{- range $key := .keys }}
{{- $svc := index $services $key }}
- name: {{ printf "IDP__%s__DATABASE_URL" ($svc.section | upper) }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index $root.Values.secrets.keys.databaseUrl $key | required (printf "secrets.keys.databaseUrl.%s is required" $key) }}
{{- end }}
- name: IDP__CACHE__URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.cacheUrl | required "secrets.keys.cacheUrl is required" }}
{{- if has "notification" .keys }}
{{- $d := $root.Values.config.delivery }}
{{- if and $d.email.host $d.email.username }}
- name: IDP__DELIVERY__EMAIL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.smtpPassword | required "secrets.keys.smtpPassword is required" }}
{{- end }}
{{- if and $d.pec.host $d.pec.username }}
- name: IDP__DELIVERY__PEC__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.pecPassword | required "secrets.keys.pecPassword is required" }}
{{- end }}
{{- if $d.sms.url }}
- name: IDP__DELIVERY__SMS__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.smsToken | required "secrets.keys.smsToken is required" }}
{{- end }}
{{- end }}
{{- if $root.Values.config.bus.sasl.enabled }}
{{- /* Helper variables (not IDP__*, which the services would read as
       settings), expanded by Kubernetes into the librdkafka properties. */}}
- name: SPID_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.kafkaSaslUsername | required "secrets.keys.kafkaSaslUsername is required" }}
- name: SPID_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secrets.keys.kafkaSaslPassword | required "secrets.keys.kafkaSaslPassword is required" }}
- name: IDP__BUS__PROPERTIES
  value: '{"sasl.username"="$(SPID_KAFKA_SASL_USERNAME)","sasl.password"="$(SPID_KAFKA_SASL_PASSWORD)"}'
{{- end }}
{{- end -}}

{{- define "spid-idp.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "spid-idp.containerSecurityContext" -}}
{{- toYaml .Values.securityContext -}}
{{- end -}}

{{- define "spid-idp.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The configuration file and a writable /tmp (the root is read-only). */}}
{{- define "spid-idp.volumes" -}}
- name: config
  configMap:
    name: {{ include "spid-idp.configMapName" . }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "spid-idp.volumeMounts" -}}
- name: config
  mountPath: /etc/spid-idp
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}
