# Only with `nomarch controller --cordon-suspect-nodes`: marking a suspect node ineligible is
# PUT /v1/node/:id/eligibility, which needs node write (nomad/node_endpoint.go
# Node.UpdateEligibility). Apply it beside deploy/acl/nomad-policy.hcl:
#
#   nomad acl policy apply -namespace default -job nomarch nomarch-cordon deploy/acl/nomad-policy-cordon.hcl
node {
  policy = "write"
}
