# The Consul ACL policy nomarch's controller needs (controller/src/clients/consul.rs), read-only;
# controller/tests/deploy.rs holds this file against the calls the client makes.
#
#   consul acl policy create -name nomarch -rules @deploy/acl/consul-policy.hcl
#   consul acl token create -description nomarch -policy-name nomarch
# and put the token's SecretID in the controller's variable (consul_token).

# GET /v1/health/service/:name and GET /v1/health/state/:state (check health of the instances
# nomarch runs): Consul answers only for services the token may read, so every service nomarch
# registers must be readable; its service names are not known in advance.
service_prefix "" {
  policy = "read"
}

# The same health answers carry each instance's node, and Consul filters out entries on nodes
# the token may not read.
node_prefix "" {
  policy = "read"
}
